/// Which sessions `remediate` may terminate. Pure: it decides from a snapshot and its blocking
/// graph, and the same policy serves the one-shot command and the webhook service.
public struct RemediationPolicy: Sendable {
    /// Idle in transaction for at least this long (seconds) before a session is a target.
    public var minIdleSeconds: Double = 60
    /// Every idle-in-transaction session past `minIdleSeconds`, blocking or not.
    public var allIdleInTransaction = false
    /// Only this session (`--pid`); `force` allows it when it is not idle in transaction.
    public var pid: Int32?
    public var force = false
    /// Regular expressions, matched against the whole value (as Prometheus does).
    public var excludeApplications: [Pattern] = []
    public var excludeUsers: [Pattern] = []
    public var excludeDatabases: [Pattern] = []
    public var onlyDatabases: [Pattern] = []
    /// Only sessions in this database (the one connected to), unless nil (`--all-databases`).
    public var database: String?
    /// At most this many terminations in one pass.
    public var maxTerminations = 10

    public init() {}

    /// A regular expression that must match a whole value; keeps its source for messages.
    public struct Pattern: Sendable, CustomStringConvertible {
        public let source: String
        // Regex<AnyRegexOutput> is not marked Sendable; this one is immutable after init and only read.
        nonisolated(unsafe) private let regex: Regex<AnyRegexOutput>

        public init(_ source: String) throws {
            self.source = source
            self.regex = try Regex(source)
        }

        public func matches(_ value: String) -> Bool { (try? regex.wholeMatch(in: value)) != nil }
        public var description: String { source }
    }

    /// The decisions for one pass, in the order they should be carried out: root blockers with
    /// the most waiters first, then (with `allIdleInTransaction`) the oldest idle sessions.
    /// `skipping`: pids that are no candidates (terminated a moment ago, still exiting).
    public func decide(snapshot: ActivitySnapshot, graph: BlockingGraph, ownPID: Int32, skipping: Set<Int32> = []) -> [Decision] {
        var byPID: [Int32: Session] = [:]
        for s in snapshot.sessions { byPID[s.pid] = s }

        // A root's waiters are counted with the graph; anyone else's are walked (one session).
        var candidates: [(pid: Int32, session: Session?, blocked: Int?)] = []
        if let pid {
            candidates = [(pid, byPID[pid], nil)]
        } else {
            candidates = graph.roots.filter { database == nil || $0.datname == database }.map { ($0.pid, $0.session, $0.blockedCount) }
            if allIdleInTransaction {
                let roots = Set(candidates.map(\.pid))
                let idle = snapshot.sessions.filter {
                    $0.isIdleInTransaction && !roots.contains($0.pid) && (database == nil || $0.datname == database)
                }
                    .sorted { ($0.stateSeconds ?? 0) != ($1.stateSeconds ?? 0) ? ($0.stateSeconds ?? 0) > ($1.stateSeconds ?? 0) : $0.pid < $1.pid }
                candidates += idle.map { ($0.pid, $0, nil) }
            }
        }

        var decisions: [Decision] = []
        var terminations = 0
        for (pid, session, counted) in candidates where !skipping.contains(pid) {
            let blocked = counted ?? graph.allWaiters(of: pid).count
            var decision = Decision(pid: pid, session: session, blockedSessions: blocked, action: .skip, code: .excluded, reason: "")
            if let (code, text) = refusal(pid: pid, session: session, ownPID: ownPID) {
                (decision.code, decision.reason) = (code, text)
            } else if terminations >= maxTerminations {
                decision.code = .capReached
                decision.reason = "the cap of \(maxTerminations) terminations per run is reached (--max-terminations)"
            } else if let session, let termination = GuardedTermination(session: session) {
                decision.action = .terminate
                decision.termination = termination
                (decision.code, decision.reason) = targetReason(session, blocked: blocked)
                terminations += 1
            } else {
                decision.code = .unknownIdentity
                decision.reason = "the session's identity (backend_start, state_change) could not be read"
            }
            decisions.append(decision)
        }
        return decisions
    }

    /// Why this session must not be terminated, or nil when it may be.
    private func refusal(pid: Int32, session: Session?, ownPID: Int32) -> (Decision.Code, String)? {
        if session.map({ $0.identity.isPreparedTransaction }) ?? (pid <= 0) {
            // Ending one is a decision about data (commit or throw away its work): a person's.
            guard let gid = session?.gid else {
                return (.preparedTransaction, "a prepared transaction holds the lock: it has no session to end; see pg_prepared_xacts")
            }
            let literal = SQLLiteral.quote(gid)
            return (
                .preparedTransaction,
                "prepared transaction \(literal) holds the lock: it has no session to end; a person may run ROLLBACK PREPARED \(literal) (or COMMIT PREPARED \(literal))"
            )
        }
        if pid == ownPID { return (.ownSession, "this is the remediator's own session") }
        guard let session else { return (.noSuchSession, "no such session (it may have ended)") }
        if !session.isClient { return (.notClient, "not a client backend (\(session.backendType ?? "unknown"))") }
        if session.isHidden { return (.hidden, "its state is hidden from this role (grant pg_read_all_stats)") }
        if session.waitingOnLock { return (.waiting, "it is itself waiting on a lock: a victim, not the cause") }
        if let database, session.datname != database {
            return (
                .otherDatabase,
                "it is in database \"\(session.datname ?? "")\", not \"\(database)\" (--all-databases to act on every database)"
            )
        }
        if let p = excludeApplications.first(where: { $0.matches(session.applicationName) }) {
            return (.excluded, "application \"\(session.applicationName)\" is excluded (--exclude-application \(p))")
        }
        if let p = excludeUsers.first(where: { $0.matches(session.usename ?? "") }) {
            return (.excluded, "user \"\(session.usename ?? "")\" is excluded (--exclude-user \(p))")
        }
        if let p = excludeDatabases.first(where: { $0.matches(session.datname ?? "") }) {
            return (.excluded, "database \"\(session.datname ?? "")\" is excluded (--exclude-database \(p))")
        }
        if !onlyDatabases.isEmpty && !onlyDatabases.contains(where: { $0.matches(session.datname ?? "") }) {
            return (.excluded, "database \"\(session.datname ?? "")\" is not in --only-database")
        }
        if !session.isIdleInTransaction {
            if self.pid != nil && force { return nil }
            return (
                .notIdleInTransaction,
                "it is \(session.stateLabel), not idle in transaction" + (self.pid != nil ? " (--force to terminate it anyway)" : "")
            )
        }
        if self.pid == nil, let idle = session.stateSeconds, idle < minIdleSeconds {
            return (
                .belowMinIdle,
                "idle in transaction for \(DurationText.format(idle)), less than --min-idle \(DurationText.format(minIdleSeconds))"
            )
        }
        return nil
    }

    private func targetReason(_ session: Session, blocked: Int) -> (Decision.Code, String) {
        let state = "\(session.stateLabel) for \(DurationText.format(session.stateSeconds ?? 0))"
        if blocked > 0 {
            return (.rootBlocker, "root blocker \(state), \(blocked) session\(blocked == 1 ? "" : "s") waiting behind it")
        }
        return pid != nil ? (.namedPID, "named by --pid, \(state)") : (.idleInTransaction, "\(state) (--all-idle-in-transaction)")
    }
}
