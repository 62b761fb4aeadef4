/// A change to the episodes of one target, as one sample shows it.
public enum EpisodeChange: Sendable, Equatable {
    case started(EpisodeRecord), updated(EpisodeRecord), ended(EpisodeRecord)
}

/// One target's blocking episodes, followed from one detailed sample to the next. Pure: the
/// recorder (`EpisodeRecorder`) feeds it samples and stores, logs and counts what it returns.
///
/// **An episode** is one root of the blocking graph — a session that blocks others and waits on
/// nobody, identified by pid and `backend_start` (a reused pid is another root), or a prepared
/// transaction by its gid — while at least one session waits behind it, directly or not.
/// - It **starts** at the earliest `pg_locks.waitstart` among the sessions waiting behind it when
///   first seen (`sentAt` minus their longest wait: waits are ages on the server at the
///   statement's start), so it is exact even when it began between two samples. The start and the
///   id (`EpisodeRecord.id`) are fixed then.
/// - It **ends** at the first sample in which nothing waits behind that root (`ended_at` is that
///   sample's `sentAt`), as:
///   - `root_ended` when the root's backend is gone (its pid with that `backend_start`); the
///     cause comes from the root database's `pg_stat_database` counters since the previous
///     sample: `sessions_killed` (terminated: `pg_terminate_backend` or a shutdown),
///     `sessions_fatal` (a FATAL error; named as `idle_in_transaction_session_timeout` or
///     `transaction_timeout` when the root had been idle, or open, longer than its role's
///     timeout), `sessions_abandoned` (the client went away without closing the session), or
///     none of them (the client closed its session);
///   - `released` when the root is still there and its transaction ended (no transaction, or
///     another `xact_start`), or a session that waited in the previous sample is still there in
///     the same transaction and no longer waits (it got the lock: the root let it go);
///   - `waiters_gone` when the root still holds the same transaction and the sessions behind it
///     gave up (a `lock_timeout`, a cancel, a disconnect);
///   - `unobserved` when the exporter stopped, or lost sight of the target and then found the
///     episode over, or stayed blind for `blindGrace` (ended at the last sample that saw it);
///     seen again blocking within the grace, it simply goes on.
/// - A chain whose root commits ends that episode `released`; its next session, if it now blocks
///   others, is a root of its own: a second episode, starting at its own waiters' earliest wait.
/// - A cycle behind a root (a deadlock not yet detected, among its waiters) counts under that
///   root. A cycle nobody outside holds up has no root (`BlockingGraph`), so no episode: the
///   server breaks it after `deadlock_timeout`, and `pg_deadlocks` counts it.
///
/// Statements are rendered by `QueryText` under the `--episodes.query-text` policy when first
/// seen and again only when the raw text changes; the raw text is never put in a record.
public struct EpisodeTracker: Sendable {
    private struct Ongoing: Sendable {
        var record: EpisodeRecord
        /// The root's statement as last rendered, raw (kept here only, to re-render on change).
        var rawQuery: String?
        /// The root's `xact_start` as the server printed it, last seen.
        var transactionStart: String?
        /// Distinct waiters (pid and `backend_start`) → the longest wait seen, in seconds.
        var waits: [String: Double] = [:]
        /// Waiter identity → its index in `record.waiters`.
        var listed: [String: Int] = [:]
        /// The waiters of the last sample that saw the episode: identity → `xact_start`.
        var lastWaiters: [String: String?] = [:]
        var lastSeen: EpisodeRecord.Timestamp
        /// Set when a sample failed after the last one that saw the episode.
        var blind = false
    }

    /// How long an episode outlives a loss of sight: a root seen again blocking within this
    /// goes on as the same episode (same id); past it, the episode ends `unobserved`.
    public static let blindGrace: Double = 10

    private let target: String
    private let policy: QueryText.Policy
    /// Root key → its ongoing episode.
    private var episodes: [String: Ongoing] = [:]
    /// The `pg_stat_database` counters of the previous sample, by database.
    private var previousCounters: [String: DatabaseStats] = [:]

    public init(target: String, queryText: QueryText.Policy) {
        self.target = target
        self.policy = queryText
    }

    /// Ongoing episodes, newest first.
    public var ongoing: [EpisodeRecord] {
        episodes.values.map(\.record).sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
    }

    public mutating func observe(_ snapshot: ActivitySnapshot, graph: BlockingGraph, sentAt: EpisodeRecord.Timestamp) -> [EpisodeChange] {
        var changes: [EpisodeChange] = []
        var present = Set<String>()
        let guards = GuardSettings(settings: snapshot.settings, roleSettings: snapshot.roleSettings)
        let waitingLocks = Dictionary(
            snapshot.lockDetails.lazy.filter { !$0.granted }.map { ($0.pid, $0) }, uniquingKeysWith: { first, _ in first })
        // A root with no row of its own (a backend that ended between `pg_blocking_pids()` and
        // the read of the activity) names nobody: no episode until a sample sees who it is.
        for root in graph.roots where root.session != nil {
            let waiterPIDs = graph.allWaiters(of: root.pid)
            let waiters = waiterPIDs.compactMap { graph.blocked[$0] }
            guard !waiters.isEmpty else { continue }
            let key = Self.key(root)
            present.insert(key)
            let longest = waiters.compactMap(\.lockWaitSeconds).max() ?? 0
            var entry: Ongoing
            let isNew: Bool
            if let existing = episodes[key] {
                entry = existing
                isNew = false
            } else {
                entry = start(root, waiters: waiters, longest: longest, graph: graph, locks: waitingLocks, guards: guards, sentAt: sentAt)
                isNew = true
            }
            let before = entry.record
            update(&entry, root: root, waiters: waiters, locks: waitingLocks, sentAt: sentAt)
            episodes[key] = entry
            if isNew {
                changes.append(.started(entry.record))
            } else if entry.record != before {
                changes.append(.updated(entry.record))
            }
        }
        for key in episodes.keys.sorted() where !present.contains(key) {
            guard var entry = episodes.removeValue(forKey: key) else { continue }
            if entry.blind {
                // It ended while the target could not be read: how and when is unknown.
                entry.record.end = .unobserved
                finish(&entry.record, at: entry.lastSeen)
            } else {
                classifyEnd(&entry, snapshot: snapshot, guards: guards)
                finish(&entry.record, at: sentAt)
            }
            changes.append(.ended(entry.record))
        }
        previousCounters = Dictionary(snapshot.databases.map { ($0.datname, $0) }, uniquingKeysWith: { first, _ in first })
        return changes
    }

    /// The target could not be read. Ongoing episodes go on, blind, for `blindGrace` after the
    /// last sample that saw them: seen again, they continue; found over, or blind for longer,
    /// they end `unobserved` at that last sample. The counters start over (a delta across the
    /// gap would name the wrong cause).
    public mutating func lostSight(at time: EpisodeRecord.Timestamp) -> [EpisodeChange] {
        previousCounters = [:]
        var changes: [EpisodeChange] = []
        for key in episodes.keys.sorted() {
            episodes[key]!.blind = true
            let entry = episodes[key]!
            guard Self.seconds(from: entry.lastSeen, to: time) >= Self.blindGrace else { continue }
            var record = entry.record
            record.end = .unobserved
            finish(&record, at: entry.lastSeen)
            episodes[key] = nil
            changes.append(.ended(record))
        }
        return changes
    }

    /// The exporter stops: every ongoing episode ends `unobserved` at the last sample that saw it.
    public mutating func stop(at time: EpisodeRecord.Timestamp) -> [EpisodeChange] { endAllUnobserved() }

    // MARK: Steps

    private static func key(_ root: BlockingGraph.Root) -> String {
        if let gid = root.session?.gid { return "gid:" + gid }
        return "pid:\(root.pid):\(root.session?.backendStart ?? "")"
    }

    private static func waiterKey(_ session: Session) -> String { "\(session.pid):\(session.backendStart ?? "")" }

    private func start(
        _ root: BlockingGraph.Root, waiters: [Session], longest: Double, graph: BlockingGraph, locks: [Int32: LockDetail],
        guards: GuardSettings, sentAt: EpisodeRecord.Timestamp
    ) -> Ongoing {
        let session = root.session
        let startedAt = EpisodeRecord.Timestamp(
            microsecondsSinceEpoch: sentAt.microsecondsSinceEpoch - Int64((longest * 1_000_000).rounded()))
        var recordRoot = EpisodeRecord.Root(
            pid: session?.gid == nil ? root.pid : nil, backendStart: session?.backendStart.flatMap(Self.timestamp),
            usename: session?.usename, applicationName: session?.applicationName,
            clientAddr: session.flatMap { $0.clientAddr.isEmpty ? nil : $0.clientAddr },
            clientPort: session?.clientPort.map { Int32(clamping: $0) }, backendType: session?.backendType, gid: session?.gid)
        recordRoot.pgbouncerClient = session?.poolerClient
        if session?.gid != nil { recordRoot.backendType = Session.preparedTransaction }
        // What the first waiters queue for: the direct waiter that has waited longest.
        let direct = graph.directWaiters(of: root.pid).compactMap { graph.blocked[$0] }
        let first = direct.max { ($0.lockWaitSeconds ?? 0, -$0.pid) < ($1.lockWaitSeconds ?? 0, -$1.pid) }
        let lock = first.map { waiter -> EpisodeRecord.Lock in
            let detail = locks[waiter.pid]
            return EpisodeRecord.Lock(
                locktype: waiter.waitLocktype ?? detail?.target.locktype ?? "relation", mode: waiter.waitMode ?? detail?.mode ?? "",
                relation: waiter.waitRelation ?? detail?.target.relationName)
        }
        var guardTimeouts: EpisodeRecord.GuardTimeouts?
        if let usename = session?.usename, session?.gid == nil {
            let values = guards.forSessions(datname: root.datname, usename: usename)
            guardTimeouts = EpisodeRecord.GuardTimeouts(
                idleInTransactionSessionTimeout: values["idle_in_transaction_session_timeout"],
                transactionTimeout: values["transaction_timeout"])
        }
        let record = EpisodeRecord(
            id: EpisodeRecord.id(target: target, root: recordRoot, startedAt: startedAt), target: target, datname: root.datname,
            startedAt: startedAt, root: recordRoot, lock: lock, guardTimeouts: guardTimeouts)
        return Ongoing(record: record, lastSeen: sentAt)
    }

    private func update(
        _ entry: inout Ongoing, root: BlockingGraph.Root, waiters: [Session], locks: [Int32: LockDetail], sentAt: EpisodeRecord.Timestamp
    ) {
        if let session = root.session, session.gid == nil {
            entry.record.root.state = session.state
            entry.record.root.stateChange = session.stateChange.flatMap(Self.timestamp)
            entry.transactionStart = session.transactionStart
            entry.record.root.xactStart = session.transactionStart.flatMap(Self.timestamp)
            // Named from the latest pooler read, which may come a sample after the episode's
            // first (the sampler never waits on a pooler); once known, kept.
            if let client = session.poolerClient { entry.record.root.pgbouncerClient = client }
            if let raw = session.query, raw != entry.rawQuery {
                entry.rawQuery = raw
                let rendered = QueryText.render(raw, policy: policy)
                entry.record.root.query = rendered?.text
                entry.record.root.queryFingerprint = rendered?.fingerprint
                entry.record.root.queryReduced = rendered?.reduced == true ? true : nil
            }
        }
        entry.record.samples += 1
        entry.record.peakBlocked = max(entry.record.peakBlocked, root.blockedCount)
        entry.record.maxDepth = max(entry.record.maxDepth, root.depth)
        var lastWaiters: [String: String?] = [:]
        for waiter in waiters.sorted(by: { ($0.lockWaitSeconds ?? 0, -$0.pid) > ($1.lockWaitSeconds ?? 0, -$1.pid) }) {
            let key = Self.waiterKey(waiter)
            let waited = waiter.lockWaitSeconds ?? 0
            entry.waits[key] = max(entry.waits[key] ?? 0, waited)
            lastWaiters[key] = waiter.transactionStart
            if let index = entry.listed[key] {
                entry.record.waiters[index].waitedSeconds = max(entry.record.waiters[index].waitedSeconds, waited)
            } else if entry.record.waiters.count < EpisodeRecord.maximumWaiters {
                entry.listed[key] = entry.record.waiters.count
                let detail = locks[waiter.pid]
                entry.record.waiters.append(
                    EpisodeRecord.Waiter(
                        pid: waiter.pid, usename: waiter.usename, applicationName: waiter.applicationName,
                        mode: waiter.waitMode ?? detail?.mode, relation: waiter.waitRelation ?? detail?.target.relationName,
                        query: waiter.query.flatMap { QueryText.render($0, policy: policy)?.text }, waitedSeconds: waited,
                        isMigrate: waiter.applicationName.hasPrefix(ChildEnvironment.tagPrefix)))
            }
        }
        entry.lastWaiters = lastWaiters
        entry.record.blockedTotal = entry.waits.count
        entry.record.maxWaitSeconds = entry.waits.values.max() ?? 0
        entry.record.waiterSeconds = entry.waits.values.reduce(0, +)
        entry.record.durationSeconds = Self.seconds(from: entry.record.startedAt, to: sentAt)
        entry.lastSeen = sentAt
        entry.blind = false
    }

    private func classifyEnd(_ entry: inout Ongoing, snapshot: ActivitySnapshot, guards: GuardSettings) {
        let record = entry.record
        if let gid = record.root.gid {
            let stillPrepared = snapshot.preparedTransactions.contains { $0.gid == gid }
            entry.record.end = stillPrepared ? .waitersGone : .released
            if !stillPrepared { entry.record.endCause = "committed or rolled back (COMMIT PREPARED / ROLLBACK PREPARED)" }
            return
        }
        let rootSession = snapshot.sessions.first {
            $0.pid == record.root.pid && $0.backendStart.flatMap(Self.timestamp) == record.root.backendStart
        }
        guard let rootSession else {
            entry.record.end = .rootEnded
            entry.record.endCause = rootEndCause(record, snapshot: snapshot)
            return
        }
        let sameTransaction = rootSession.transactionStart != nil && rootSession.transactionStart == entry.transactionStart
        if !sameTransaction {
            entry.record.end = .released
            return
        }
        // A waiter still in the transaction it waited in, and no longer waiting, got the lock.
        let granted = snapshot.sessions.contains { session in
            guard let previous = entry.lastWaiters[Self.waiterKey(session)], !session.isBlocked else { return false }
            return previous != nil && previous == session.transactionStart
        }
        entry.record.end = granted ? .released : .waitersGone
    }

    /// Why the root's backend is gone, from its database's session counters since the previous sample.
    private func rootEndCause(_ record: EpisodeRecord, snapshot: ActivitySnapshot) -> String? {
        guard let now = snapshot.databases.first(where: { $0.datname == record.datname }),
            let before = previousCounters[record.datname]
        else { return nil }
        func rose(_ value: (DatabaseStats) -> Double?) -> Bool {
            guard let a = value(before), let b = value(now) else { return false }
            return b > a
        }
        if rose(\.sessionsKilled) { return "terminated (pg_terminate_backend, or a shutdown)" }
        if rose(\.sessionsFatal) {
            if Session.isIdleInTransaction(record.root.state), let timeout = record.guardTimeouts?.idleInTransactionSessionTimeout,
                timeout > 0
            {
                return "idle_in_transaction_session_timeout (\(DurationText.format(timeout)))"
            }
            if let timeout = record.guardTimeouts?.transactionTimeout, timeout > 0 { return "transaction_timeout (\(DurationText.format(timeout)))" }
            return "a FATAL error ended it"
        }
        if rose(\.sessionsAbandoned) { return "client gone (the connection was lost without closing the session)" }
        return "the client closed its session"
    }

    private mutating func endAllUnobserved() -> [EpisodeChange] {
        let changes = episodes.keys.sorted().compactMap { key -> EpisodeChange? in
            guard var record = episodes[key]?.record else { return nil }
            record.end = .unobserved
            finish(&record, at: episodes[key]!.lastSeen)
            return .ended(record)
        }
        episodes = [:]
        return changes
    }

    private func finish(_ record: inout EpisodeRecord, at time: EpisodeRecord.Timestamp) {
        record.ongoing = false
        record.endedAt = time
        record.durationSeconds = Self.seconds(from: record.startedAt, to: time)
    }

    // MARK: Time

    static func seconds(from start: EpisodeRecord.Timestamp, to end: EpisodeRecord.Timestamp) -> Double {
        Double(end.microsecondsSinceEpoch - start.microsecondsSinceEpoch) / 1_000_000
    }

    /// `2026-12-05 00:18:04.123456+00` (timestamptz as text, ISO DateStyle).
    static func timestamp(_ text: String) -> EpisodeRecord.Timestamp? {
        var iso = String(text.map { $0 == " " ? "T" : $0 })
        if let sign = iso.lastIndex(where: { $0 == "+" || $0 == "-" }), iso.distance(from: sign, to: iso.endIndex) == 3 { iso += ":00" }
        return EpisodeRecord.Timestamp(rfc3339: iso)
    }
}
