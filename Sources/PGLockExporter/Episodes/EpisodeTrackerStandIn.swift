// STAND-IN: a minimal EpisodeTracker with the API the tracker helper (branch i20-tracker) is
// writing, so that EpisodeRecorder and its integration tests build meanwhile. Deleted when
// i20-tracker is merged.

/// A change to the episodes of one target, as one sample shows it.
public enum EpisodeChange: Sendable, Equatable {
    case started(EpisodeRecord), updated(EpisodeRecord), ended(EpisodeRecord)
}

/// Stand-in: one target's ongoing episodes, keyed by root identity.
public struct EpisodeTracker: Sendable {
    private struct Ongoing: Sendable {
        var record: EpisodeRecord
        var stateChange: String?
        var killed: Double?
        var seen: Set<Int32>
    }

    private let target: String
    private let policy: QueryText.Policy
    private var episodes: [String: Ongoing] = [:]
    private var order: [String] = []

    public init(target: String, queryText: QueryText.Policy) {
        self.target = target
        self.policy = queryText
    }

    public var ongoing: [EpisodeRecord] { order.compactMap { episodes[$0]?.record } }

    public mutating func observe(_ snapshot: ActivitySnapshot, graph: BlockingGraph, sentAt: EpisodeRecord.Timestamp) -> [EpisodeChange] {
        var changes: [EpisodeChange] = []
        var present = Set<String>()
        for root in graph.roots {
            let session = root.session
            let key = session?.gid.map { "gid:" + $0 } ?? "pid:\(root.pid):\(session?.backendStart ?? "")"
            let waiters = graph.allWaiters(of: root.pid).compactMap { graph.blocked[$0] }
            guard !waiters.isEmpty else { continue }
            present.insert(key)
            let longest = waiters.compactMap(\.lockWaitSeconds).max() ?? 0
            let killed = snapshot.databases.first { $0.datname == root.datname }?.sessionsKilled
            var entry: Ongoing
            let isNew = episodes[key] == nil
            if let existing = episodes[key] {
                entry = existing
            } else {
                let startedAt = EpisodeRecord.Timestamp(microsecondsSinceEpoch: sentAt.microsecondsSinceEpoch - Int64(longest * 1_000_000))
                let rendered = session?.query.flatMap { QueryText.render($0, policy: policy) }
                let recordRoot = EpisodeRecord.Root(
                    pid: session?.gid == nil ? root.pid : nil, backendStart: session?.backendStart.flatMap(timestamp),
                    usename: session?.usename, applicationName: session?.applicationName, clientAddr: session?.clientAddr,
                    backendType: session?.backendType, state: session?.state, query: rendered?.text,
                    queryFingerprint: rendered?.fingerprint, queryReduced: rendered?.reduced == true ? true : nil, gid: session?.gid)
                let first = graph.directWaiters(of: root.pid).compactMap { graph.blocked[$0] }.first
                let detail = first.flatMap { w in snapshot.lockDetails.first { $0.pid == w.pid && !$0.granted } }
                let lock = detail.map { EpisodeRecord.Lock(locktype: "relation", mode: $0.mode, relation: first?.waitRelation) }
                    ?? first.map { EpisodeRecord.Lock(locktype: "relation", mode: "", relation: $0.waitRelation) }
                entry = Ongoing(
                    record: EpisodeRecord(
                        id: EpisodeRecord.id(target: target, root: recordRoot, startedAt: startedAt), target: target,
                        datname: root.datname, startedAt: startedAt, root: recordRoot, lock: lock),
                    stateChange: session?.stateChange, killed: killed, seen: [])
                order.append(key)
            }
            entry.killed = killed ?? entry.killed
            entry.record.samples += 1
            entry.record.peakBlocked = max(entry.record.peakBlocked, root.blockedCount)
            entry.record.maxDepth = max(entry.record.maxDepth, root.depth)
            entry.record.maxWaitSeconds = max(entry.record.maxWaitSeconds, longest)
            entry.record.durationSeconds = Double(sentAt.microsecondsSinceEpoch - entry.record.startedAt.microsecondsSinceEpoch) / 1_000_000
            for waiter in waiters where entry.seen.insert(waiter.pid).inserted && entry.record.waiters.count < EpisodeRecord.maximumWaiters {
                entry.record.waiters.append(EpisodeRecord.Waiter(
                    pid: waiter.pid, usename: waiter.usename, applicationName: waiter.applicationName,
                    relation: waiter.waitRelation, query: waiter.query.flatMap { QueryText.render($0, policy: policy)?.text },
                    waitedSeconds: waiter.lockWaitSeconds ?? 0))
            }
            entry.record.blockedTotal = entry.seen.count
            episodes[key] = entry
            changes.append(isNew ? .started(entry.record) : .updated(entry.record))
        }
        for key in order where !present.contains(key) {
            guard var entry = episodes.removeValue(forKey: key) else { continue }
            let root = snapshot.sessions.first {
                $0.pid == entry.record.root.pid && $0.backendStart.flatMap(timestamp) == entry.record.root.backendStart
            }
            entry.record.ongoing = false
            entry.record.endedAt = sentAt
            entry.record.durationSeconds = Double(sentAt.microsecondsSinceEpoch - entry.record.startedAt.microsecondsSinceEpoch) / 1_000_000
            if let root {
                entry.record.end = root.stateChange != entry.stateChange || !root.isIdleInTransaction ? .released : .waitersGone
            } else {
                entry.record.end = .rootEnded
                let killed = snapshot.databases.first { $0.datname == entry.record.datname }?.sessionsKilled
                if let killed, let before = entry.killed, killed > before { entry.record.endCause = "terminated" }
            }
            changes.append(.ended(entry.record))
        }
        order.removeAll { episodes[$0] == nil }
        return changes
    }

    public mutating func lostSight(at time: EpisodeRecord.Timestamp) -> [EpisodeChange] { endAll(at: time) }

    public mutating func stop(at time: EpisodeRecord.Timestamp) -> [EpisodeChange] { endAll(at: time) }

    private mutating func endAll(at time: EpisodeRecord.Timestamp) -> [EpisodeChange] {
        let changes = order.compactMap { episodes[$0] }.map { entry -> EpisodeChange in
            var record = entry.record
            record.ongoing = false
            record.end = .unobserved
            record.endedAt = EpisodeRecord.Timestamp(
                microsecondsSinceEpoch: record.startedAt.microsecondsSinceEpoch + Int64(record.durationSeconds * 1_000_000))
            return .ended(record)
        }
        episodes = [:]
        order = []
        return changes
    }
}

/// `2026-12-05 00:18:04.123456+00` (timestamptz as text, ISO DateStyle).
private func timestamp(_ text: String) -> EpisodeRecord.Timestamp? {
    var iso = String(text.map { $0 == " " ? "T" : $0 })
    if let sign = iso.lastIndex(where: { $0 == "+" || $0 == "-" }), iso.distance(from: sign, to: iso.endIndex) == 3 { iso += ":00" }
    return EpisodeRecord.Timestamp(rfc3339: iso)
}
