/// What one collection read from the server: every backend but our own, lock counts, databases
/// and the guard settings. Plain values, safe to share between threads.
public struct ActivitySnapshot: Sendable {
    public var serverVersion: Int

    /// Every backend except the exporter's own; filter with `isClient`.
    public var sessions: [Session]
    public var locks: [LockCount]
    /// Connectable databases, in name order: the zero-filled metrics get one series each.
    public var databases: [DatabaseStats]
    /// The server's settings; read every scrape by `check`/`remediate`, cached by the exporter.
    public var settings: ServerSettings
    /// Locks on contended objects; only read for `check` (see `LockDetailsStatement`).
    public var lockDetails: [LockDetail]

    public init(
        serverVersion: Int, sessions: [Session], locks: [LockCount], databases: [DatabaseStats],
        lockDetails: [LockDetail] = [], settings: ServerSettings
    ) {
        self.serverVersion = serverVersion
        self.sessions = sessions
        self.locks = locks
        self.databases = databases
        self.lockDetails = lockDetails
        self.settings = settings
    }

    /// True when some sessions' state was hidden from us (the role lacks `pg_read_all_stats`).
    public var hasHiddenSessions: Bool { sessions.contains { $0.isHidden } }
}

/// One row of `pg_stat_activity`, with the lock-wait facts the blocking graph needs.
public struct Session: Sendable, Equatable {
    public var pid: Int32
    public var datname: String?
    public var usename: String?
    public var applicationName: String
    /// `host(client_addr)`, or `local` for a Unix-socket client.
    public var clientAddr: String
    /// nil when hidden from a role without `pg_read_all_stats`.
    public var backendType: String?
    /// `pg_stat_activity.state`; nil when hidden.
    public var state: String?
    /// Seconds since `state_change`: for idle in transaction, how long it has sat idle.
    public var stateSeconds: Double?
    /// Seconds since `xact_start`; nil outside a transaction.
    public var transactionSeconds: Double?
    /// Waiting on a heavyweight lock (`wait_event_type = 'Lock'`).
    public var waitingOnLock: Bool
    /// `pg_blocking_pids(pid)` for lock waiters, deduplicated (parallel workers repeat their
    /// leader's pid); 0 stands for a prepared transaction. Empty for everyone else.
    public var blockedBy: [Int32]
    /// Seconds since `pg_locks.waitstart`.
    public var lockWaitSeconds: Double?
    /// `backend_start` and `state_change` as the server printed them: the identity that a
    /// termination re-checks so a reused pid or a session that moved on is never killed.
    public var backendStart: String?
    public var stateChange: String?
    /// The query text, truncated; only read for `check`.
    public var query: String?

    public init(
        pid: Int32, datname: String?, usename: String?, applicationName: String, clientAddr: String,
        backendType: String?, state: String?, stateSeconds: Double?, transactionSeconds: Double?,
        waitingOnLock: Bool, blockedBy: [Int32], lockWaitSeconds: Double?, backendStart: String?,
        stateChange: String?, query: String?
    ) {
        self.pid = pid
        self.datname = datname
        self.usename = usename
        self.applicationName = applicationName
        self.clientAddr = clientAddr
        self.backendType = backendType
        self.state = state
        self.stateSeconds = stateSeconds
        self.transactionSeconds = transactionSeconds
        self.waitingOnLock = waitingOnLock
        self.blockedBy = blockedBy
        self.lockWaitSeconds = lockWaitSeconds
        self.backendStart = backendStart
        self.stateChange = stateChange
        self.query = query
    }

    /// Without `pg_read_all_stats`, PostgreSQL shows other users' sessions with every column but
    /// pid, database, user and application NULL.
    public var isHidden: Bool { backendType == nil && state == nil }

    /// A client session in the product's sense: a client backend, or a hidden row with a database
    /// and a user (hidden background processes such as the checkpointer have neither). Its SQL
    /// twin is `SessionRules.isClient`.
    public var isClient: Bool { backendType == "client backend" || (isHidden && datname != nil && usename != nil) }

    /// The state as a metric label: hidden sessions count as `unknown`, never as missing.
    public var stateLabel: String { state ?? "unknown" }

    public var isIdleInTransaction: Bool { Self.isIdleInTransaction(state) }

    /// `idle in transaction` or `idle in transaction (aborted)`.
    public static func isIdleInTransaction(_ state: String?) -> Bool {
        state == "idle in transaction" || state == "idle in transaction (aborted)"
    }

    /// A blocked session: waits on a heavyweight lock and someone holds or queues ahead of it.
    /// Its SQL twin is `SessionRules.isBlocked`.
    public var isBlocked: Bool { waitingOnLock && !blockedBy.isEmpty }
}

/// Heavyweight locks counted by database, mode and whether granted.
public struct LockCount: Sendable, Equatable {
    /// Empty for locks not tied to one database (transaction ids, shared catalogs).
    public var datname: String
    public var mode: String
    public var granted: Bool
    public var count: Int

    public init(datname: String, mode: String, granted: Bool, count: Int) {
        self.datname = datname
        self.mode = mode
        self.granted = granted
        self.count = count
    }
}

/// A connectable database and its `pg_stat_database` counters (nil where the server is too old).
public struct DatabaseStats: Sendable, Equatable {
    public var datname: String
    public var deadlocks: Double?
    /// `idle_in_transaction_time`, in seconds (14+).
    public var idleInTransactionSeconds: Double?
    public var sessionsKilled: Double?
    public var sessionsAbandoned: Double?

    public init(
        datname: String, deadlocks: Double? = nil, idleInTransactionSeconds: Double? = nil,
        sessionsKilled: Double? = nil, sessionsAbandoned: Double? = nil
    ) {
        self.datname = datname
        self.deadlocks = deadlocks
        self.idleInTransactionSeconds = idleInTransactionSeconds
        self.sessionsKilled = sessionsKilled
        self.sessionsAbandoned = sessionsAbandoned
    }
}

/// One lock on an object that some session waits for: who, which mode, granted or queued.
public struct LockDetail: Sendable, Equatable {
    public var pid: Int32
    public var granted: Bool
    public var mode: String
    /// The relation's name, `transaction 1234`, or `relation OID in database NAME`.
    public var object: String

    public init(pid: Int32, granted: Bool, mode: String, object: String) {
        self.pid = pid
        self.granted = granted
        self.mode = mode
        self.object = object
    }
}

/// What `pg_settings` says: the version, `max_connections` and the guard timeouts.
public struct ServerSettings: Sendable, Equatable {
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    public var versionString: String
    public var maxConnections: Int
    /// Guard settings in seconds (0 = disabled), keyed by setting name.
    public var timeouts: [String: Double]

    public init(versionString: String, maxConnections: Int, timeouts: [String: Double]) {
        self.versionString = versionString
        self.maxConnections = maxConnections
        self.timeouts = timeouts
    }
}
