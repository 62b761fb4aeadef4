/// One blocking episode (issue 20): one root blocker with at least one session waiting behind it,
/// from the earliest `pg_locks.waitstart` of its waiters to the first sample at which nothing waits
/// behind it any more. This is the record `EpisodeStore` keeps and the API serves; it encodes to
/// the JSON keys below (snake_case), the times as RFC 3339 (`Timestamp`). An optional field that
/// is not known is left out of the JSON.
///
/// Statements (`root.query`, `waiters[].query`) are stored as `QueryText` renders them under the
/// exporter's `--episodes.query-text` policy; the record itself never sees the raw text.
public struct EpisodeRecord: Codable, Equatable, Sendable {
    /// How an episode ended.
    public enum End: String, Codable, CaseIterable, Sendable {
        /// The root is still there and its transaction ended (committed, rolled back) or it let
        /// the lock go.
        case released
        /// The root still holds its transaction and the sessions behind it gave up (a
        /// `lock_timeout`, a cancel, a disconnect).
        case waitersGone = "waiters_gone"
        /// The root's backend is gone (`endCause` says why, where the server's counters tell).
        case rootEnded = "root_ended"
        /// The exporter lost sight of the target, or stopped, before the end.
        case unobserved
    }

    /// The session (or prepared transaction) at the head of the chain: it waits on nobody.
    public struct Root: Codable, Equatable, Sendable {
        /// Nil for a prepared transaction (`gid` names it then).
        public var pid: Int32?
        public var backendStart: Timestamp?
        public var usename: String?
        public var applicationName: String?
        public var clientAddr: String?
        public var clientPort: Int32?
        public var backendType: String?
        public var state: String?
        public var xactStart: Timestamp?
        public var stateChange: Timestamp?
        /// The statement as `QueryText` rendered it under the policy (nil under `none`).
        public var query: String?
        /// libpg_query's fingerprint of the statement: equal for the same code path.
        public var queryFingerprint: String?
        /// True when the parser could not read the statement and the literal scanner reduced it
        /// (`QueryText.Result.reduced`).
        public var queryReduced: Bool?
        /// The prepared transaction's global id, when the root is one.
        public var gid: String?
        /// The application client behind PgBouncer that the root served, when a configured
        /// pooler named it (`--pgbouncer.dsn`): where the transaction really came from.
        public var pgbouncerClient: PoolerClient?

        public init(
            pid: Int32? = nil, backendStart: Timestamp? = nil, usename: String? = nil,
            applicationName: String? = nil, clientAddr: String? = nil, clientPort: Int32? = nil,
            backendType: String? = nil, state: String? = nil, xactStart: Timestamp? = nil,
            stateChange: Timestamp? = nil, query: String? = nil, queryFingerprint: String? = nil,
            queryReduced: Bool? = nil, gid: String? = nil
        ) {
            self.pid = pid
            self.backendStart = backendStart
            self.usename = usename
            self.applicationName = applicationName
            self.clientAddr = clientAddr
            self.clientPort = clientPort
            self.backendType = backendType
            self.state = state
            self.xactStart = xactStart
            self.stateChange = stateChange
            self.query = query
            self.queryFingerprint = queryFingerprint
            self.queryReduced = queryReduced
            self.gid = gid
        }

        enum CodingKeys: String, CodingKey {
            case pid, usename, state, query, gid
            case backendStart = "backend_start", applicationName = "application_name"
            case clientAddr = "client_addr", clientPort = "client_port", backendType = "backend_type"
            case xactStart = "xact_start", stateChange = "state_change"
            case queryFingerprint = "query_fingerprint", queryReduced = "query_reduced"
            case pgbouncerClient = "pgbouncer_client"
        }
    }

    /// What the first waiters wait for.
    public struct Lock: Codable, Equatable, Sendable {
        /// `pg_locks.locktype` (`relation`, `transactionid`, `tuple`, …).
        public var locktype: String
        /// The mode they asked for (`AccessExclusiveLock`, …).
        public var mode: String
        /// The relation's name, for relation-level locks.
        public var relation: String?

        public init(locktype: String, mode: String, relation: String? = nil) {
            self.locktype = locktype
            self.mode = mode
            self.relation = relation
        }
    }

    /// One session that waited behind the root, directly or not.
    public struct Waiter: Codable, Equatable, Sendable {
        public var pid: Int32
        public var usename: String?
        public var applicationName: String?
        public var mode: String?
        public var relation: String?
        public var query: String?
        /// Its longest observed wait in this episode.
        public var waitedSeconds: Double
        /// The child of `pg_lock_exporter migrate`.
        public var isMigrate: Bool

        public init(
            pid: Int32, usename: String? = nil, applicationName: String? = nil, mode: String? = nil,
            relation: String? = nil, query: String? = nil, waitedSeconds: Double, isMigrate: Bool = false
        ) {
            self.pid = pid
            self.usename = usename
            self.applicationName = applicationName
            self.mode = mode
            self.relation = relation
            self.query = query
            self.waitedSeconds = waitedSeconds
            self.isMigrate = isMigrate
        }

        enum CodingKeys: String, CodingKey {
            case pid, usename, mode, relation, query
            case applicationName = "application_name", waitedSeconds = "waited_seconds", isMigrate = "is_migrate"
        }
    }

    /// The guard timeouts the root's role got in that database at login, in seconds (0: off), as
    /// `GuardSettings` resolves them; nil when the server has no such setting
    /// (`transaction_timeout` before PostgreSQL 17).
    public struct GuardTimeouts: Codable, Equatable, Sendable {
        public var idleInTransactionSessionTimeout: Double?
        public var transactionTimeout: Double?

        public init(idleInTransactionSessionTimeout: Double? = nil, transactionTimeout: Double? = nil) {
            self.idleInTransactionSessionTimeout = idleInTransactionSessionTimeout
            self.transactionTimeout = transactionTimeout
        }

        enum CodingKeys: String, CodingKey {
            case idleInTransactionSessionTimeout = "idle_in_transaction_session_timeout"
            case transactionTimeout = "transaction_timeout"
        }
    }

    /// `EpisodeRecord.id(target:root:startedAt:)`, fixed when the episode is first seen.
    public var id: String
    /// The target's name (`--config.file`) or the single target's.
    public var target: String
    public var datname: String
    /// The earliest `pg_locks.waitstart` of its waiters.
    public var startedAt: Timestamp
    /// The sample at which nothing waited behind the root any more (for `unobserved`, the last
    /// sample that saw it); nil while ongoing.
    public var endedAt: Timestamp?
    public var durationSeconds: Double
    public var ongoing: Bool
    /// Nil while ongoing.
    public var end: End?
    /// Why it ended, where the server tells (for `root_ended`: terminated, a timeout, client gone).
    public var endCause: String?
    public var root: Root
    public var lock: Lock?
    /// The most sessions blocked behind the root in one sample.
    public var peakBlocked: Int
    /// Distinct sessions that waited behind the root over the whole episode.
    public var blockedTotal: Int
    /// The longest chain seen (1: everyone waits on the root directly).
    public var maxDepth: Int
    public var maxWaitSeconds: Double
    /// The sum over waiters of the time each waited.
    public var waiterSeconds: Double
    /// Samples that saw the episode.
    public var samples: Int
    /// The first `EpisodeRecord.maximumWaiters` distinct waiters, in the order they were seen.
    public var waiters: [Waiter]
    public var guardTimeouts: GuardTimeouts?

    /// How many waiters a record lists (`blockedTotal` counts them all).
    public static let maximumWaiters = 20

    public init(
        id: String, target: String, datname: String, startedAt: Timestamp, endedAt: Timestamp? = nil,
        durationSeconds: Double = 0, ongoing: Bool = true, end: End? = nil, endCause: String? = nil,
        root: Root, lock: Lock? = nil, peakBlocked: Int = 0, blockedTotal: Int = 0, maxDepth: Int = 0,
        maxWaitSeconds: Double = 0, waiterSeconds: Double = 0, samples: Int = 0, waiters: [Waiter] = [],
        guardTimeouts: GuardTimeouts? = nil
    ) {
        self.id = id
        self.target = target
        self.datname = datname
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.durationSeconds = durationSeconds
        self.ongoing = ongoing
        self.end = end
        self.endCause = endCause
        self.root = root
        self.lock = lock
        self.peakBlocked = peakBlocked
        self.blockedTotal = blockedTotal
        self.maxDepth = maxDepth
        self.maxWaitSeconds = maxWaitSeconds
        self.waiterSeconds = waiterSeconds
        self.samples = samples
        self.waiters = waiters
        self.guardTimeouts = guardTimeouts
    }

    enum CodingKeys: String, CodingKey {
        case id, target, datname, ongoing, end, root, lock, samples, waiters
        case startedAt = "started_at", endedAt = "ended_at", durationSeconds = "duration_seconds"
        case endCause = "end_cause", peakBlocked = "peak_blocked", blockedTotal = "blocked_total"
        case maxDepth = "max_depth", maxWaitSeconds = "max_wait_seconds", waiterSeconds = "waiter_seconds"
        case guardTimeouts = "guard"
    }
}
