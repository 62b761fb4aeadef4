/// One remediation decision about one session: what was decided, why, and what happened.
/// Encodes to the audit-log / `--format json` object.
public struct Decision: Sendable, Encodable {
    public enum Action: String, Sendable, Encodable {
        case terminate, skip
    }

    public enum Result: String, Sendable, Encodable {
        /// Dry run: nothing was done.
        case dryRun = "dry-run"
        case terminated
        /// Not acted on: refused by policy, or the session changed between reading and killing.
        case skipped
        /// PostgreSQL refused or the statement failed.
        case failed
    }

    /// Why, as a short fixed word: the `reason` label of the remediator's metrics.
    public enum Code: String, Sendable, Encodable, CaseIterable {
        case rootBlocker = "root_blocker", namedPID = "named_pid", idleInTransaction = "idle_in_transaction"
        case preparedTransaction = "prepared_transaction", ownSession = "own_session", noSuchSession = "no_such_session"
        case notClient = "not_client_backend", hidden = "state_hidden", waiting = "waiting_on_lock"
        case otherDatabase = "other_database", excluded, notIdleInTransaction = "not_idle_in_transaction"
        case belowMinIdle = "below_min_idle", capReached = "cap_reached", stateChanged = "state_changed"
        case refused = "refused_by_postgres", unknownIdentity = "identity_unknown"
    }

    public var time: String = ""
    public var pid: Int32
    public var session: Session?
    public var blockedSessions: Int
    public var action: Action
    public var result: Result = .skipped
    public var code: Code
    public var reason: String
    /// Set by the policy with `action == .terminate`, and only for a client backend it can name:
    /// what `Remediator` re-checks and signals. A decision to terminate without one is never
    /// carried out (`identity_unknown`).
    public internal(set) var termination: GuardedTermination?

    public init(pid: Int32, session: Session?, blockedSessions: Int, action: Action, code: Code, reason: String) {
        self.code = code
        self.pid = pid
        self.session = session
        self.blockedSessions = blockedSessions
        self.action = action
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case time, pid, datname, usename, applicationName = "application_name", clientAddr = "client_addr"
        case backendStart = "backend_start", state, stateSeconds = "state_seconds"
        case transactionSeconds = "transaction_seconds", blockedSessions = "blocked_sessions", action, result, code, reason
        case gid, pgbouncerClient = "pgbouncer_client"
    }

    /// The pid as PostgreSQL shows it: 0 for a prepared transaction.
    public var displayPID: Int32 { session?.displayPID ?? pid }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(time, forKey: .time)
        try c.encode(displayPID, forKey: .pid)
        try c.encodeIfPresent(session?.gid, forKey: .gid)
        try c.encodeIfPresent(session?.datname, forKey: .datname)
        try c.encodeIfPresent(session?.usename, forKey: .usename)
        try c.encodeIfPresent(session?.applicationName, forKey: .applicationName)
        try c.encodeIfPresent(session?.clientAddr, forKey: .clientAddr)
        try c.encodeIfPresent(session?.poolerClient, forKey: .pgbouncerClient)
        try c.encodeIfPresent(session?.backendStart, forKey: .backendStart)
        try c.encodeIfPresent(session?.stateLabel, forKey: .state)
        try c.encodeIfPresent(session?.stateSeconds, forKey: .stateSeconds)
        try c.encodeIfPresent(session?.transactionSeconds, forKey: .transactionSeconds)
        try c.encode(blockedSessions, forKey: .blockedSessions)
        try c.encode(action, forKey: .action)
        try c.encode(result, forKey: .result)
        try c.encode(code, forKey: .code)
        try c.encode(reason, forKey: .reason)
    }

    /// One line for a person: `TERMINATED pid 123 (db app, user u, app worker): reason`.
    public var summary: String {
        let verb: String
        switch (action, result) {
        case (.terminate, .dryRun): verb = "WOULD TERMINATE"
        case (.terminate, .terminated): verb = "TERMINATED"
        case (_, .failed): verb = "FAILED"
        default: verb = "SKIPPED"
        }
        var who: [String] = []
        if let s = session {
            if let d = s.datname { who.append("db \(d)") }
            if let u = s.usename { who.append("user \(u)") }
            if !s.applicationName.isEmpty { who.append("app \(s.applicationName)") }
            if let client = s.poolerClient {
                who.append(client.phrase)
            } else if !s.clientAddr.isEmpty {
                who.append("client \(s.clientAddr)")
            }
        }
        return TerminalText.safe("\(verb) pid \(displayPID)" + (who.isEmpty ? "" : " (\(who.joined(separator: ", ")))") + ": \(reason)")
    }
}
