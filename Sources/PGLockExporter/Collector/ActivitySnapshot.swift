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
    /// Prepared transactions (`pg_prepared_xacts`); those that block someone are also in
    /// `sessions`, as rows of their own (see `Session.gid`).
    public var preparedTransactions: [PreparedTransaction] = []
    /// Guard settings of roles and databases; only read for the exporter (`RoleSettingsStatement`).
    public var roleSettings: [RoleSetting]

    public init(
        serverVersion: Int, sessions: [Session], locks: [LockCount], databases: [DatabaseStats],
        lockDetails: [LockDetail] = [], settings: ServerSettings, roleSettings: [RoleSetting] = []
    ) {
        self.roleSettings = roleSettings
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
    /// `client_port`: with `clientAddr`, the socket a pooler's server connection has
    /// (`PoolerJoin`); nil for a Unix-socket client or a hidden row.
    public var clientPort: Int?
    /// The application client behind PgBouncer that this backend serves, when a configured
    /// pooler names one (`PoolerJoin`); nil otherwise, and always without `--pgbouncer.dsn`.
    public var poolerClient: PoolerClient?
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
    /// `xact_start` as the server printed it, read with the identity: an episode tells the
    /// root's transaction ending from its waiters giving up by it (an age would jitter).
    public var transactionStart: String?
    /// The query text, truncated; only read for `check`.
    public var query: String?
    /// For a parallel worker, its leader's pid (`leader_pid`). Workers are folded into their
    /// leader when the snapshot is built, so a snapshot's sessions never have one.
    public var leaderPID: Int32?
    /// The relation a lock waiter queues on: a name where our connection can resolve it (its own
    /// database), else `oid:<n>`; nil for waits on no relation (advisory locks, virtual xids).
    public var waitRelation: String?
    /// A lock waiter's requested mode (`AccessExclusiveLock`) and the kind of object it waits on
    /// (`relation`, `transactionid`, …), from its ungranted `pg_locks` row.
    public var waitMode: String?
    public var waitLocktype: String?
    /// Set on the row that stands for a prepared transaction: its `gid`. Such a row has a
    /// negative pid of its own (no backend runs it) and shows as pid 0, as
    /// `pg_blocking_pids()` reports it.
    public var gid: String?

    public init(
        pid: Int32, datname: String?, usename: String?, applicationName: String, clientAddr: String,
        backendType: String?, state: String?, stateSeconds: Double?, transactionSeconds: Double?,
        waitingOnLock: Bool, blockedBy: [Int32], lockWaitSeconds: Double?, backendStart: String?,
        stateChange: String?, query: String?, leaderPID: Int32? = nil, waitRelation: String? = nil, gid: String? = nil,
        transactionStart: String? = nil, clientPort: Int? = nil
    ) {
        self.transactionStart = transactionStart
        self.clientPort = clientPort
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
        self.leaderPID = leaderPID
        self.waitRelation = waitRelation
        self.gid = gid
    }

    /// The row standing for the prepared transaction `transaction`, ranked `index` by gid.
    init(standingFor transaction: PreparedTransaction, index: Int) {
        self.init(
            pid: -Int32(index + 1), datname: transaction.datname, usename: transaction.owner, applicationName: "",
            clientAddr: "", backendType: Session.preparedTransaction, state: Session.preparedTransaction,
            stateSeconds: transaction.ageSeconds, transactionSeconds: transaction.ageSeconds, waitingOnLock: false,
            blockedBy: [], lockWaitSeconds: nil, backendStart: nil, stateChange: nil, query: nil, gid: transaction.gid)
    }

    /// The state and backend type of a prepared transaction's row.
    public static let preparedTransaction = "prepared transaction"

    public var isPreparedTransaction: Bool { gid != nil || pid == 0 }

    /// The pid as PostgreSQL shows it: 0 for a prepared transaction.
    public var displayPID: Int32 { isPreparedTransaction ? 0 : pid }

    /// Without `pg_read_all_stats`, PostgreSQL shows other users' sessions with every column but
    /// pid, database, user and application NULL.
    public var isHidden: Bool { backendType == nil && state == nil }

    /// A parallel worker (its `leader_pid` is another backend); folded into its leader.
    var isParallelWorker: Bool { leaderPID.map { $0 != pid } ?? false }

    /// A client session in the product's sense: a client backend, or a hidden row with a database
    /// and a user (hidden background processes such as the checkpointer have neither). Its SQL
    /// twin is `SessionRules.isClient`.
    public var isClient: Bool { backendType == "client backend" || (isHidden && datname != nil && usename != nil) }

    /// The state as a label: a client session's `state` (hidden ones count as `unknown`, never
    /// as missing); any other backend's `backend_type` (`autovacuum worker`, `startup`,
    /// `prepared transaction`), so it is named, not mistaken for an idle client.
    public var stateLabel: String {
        if isClient { return state ?? "unknown" }
        return backendType ?? state ?? "unknown"
    }

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
    /// Sessions ended by a FATAL error (a timeout among them), 14+: read for episodes only.
    public var sessionsFatal: Double?

    public init(
        datname: String, deadlocks: Double? = nil, idleInTransactionSeconds: Double? = nil,
        sessionsKilled: Double? = nil, sessionsAbandoned: Double? = nil, sessionsFatal: Double? = nil
    ) {
        self.sessionsFatal = sessionsFatal
        self.datname = datname
        self.deadlocks = deadlocks
        self.idleInTransactionSeconds = idleInTransactionSeconds
        self.sessionsKilled = sessionsKilled
        self.sessionsAbandoned = sessionsAbandoned
    }
}

/// One lock on an object that some session waits for: who, which mode, granted or queued, and
/// the object as `pg_locks` names it.
public struct LockDetail: Sendable, Equatable {
    public var pid: Int32
    public var granted: Bool
    public var mode: String
    public var target: LockTarget

    public init(pid: Int32, granted: Bool, mode: String, target: LockTarget) {
        self.pid = pid
        self.granted = granted
        self.mode = mode
        self.target = target
    }
}

/// The object of a heavyweight lock: `pg_locks`' identifying columns, and the relation's name
/// (`::regclass`) where our connection can resolve it (its own database).
public struct LockTarget: Sendable, Hashable, Encodable {
    public var locktype: String
    public var datname: String?
    public var relationOID: Int?
    public var relationName: String?
    public var page: Int?
    public var tuple: Int?
    public var virtualXID: String?
    public var transactionID: String?
    public var classID: Int?
    public var objectID: Int?
    public var objectSubID: Int?

    public init(
        locktype: String, datname: String? = nil, relationOID: Int? = nil, relationName: String? = nil, page: Int? = nil,
        tuple: Int? = nil, virtualXID: String? = nil, transactionID: String? = nil, classID: Int? = nil, objectID: Int? = nil,
        objectSubID: Int? = nil
    ) {
        self.locktype = locktype
        self.datname = datname
        self.relationOID = relationOID
        self.relationName = relationName
        self.page = page
        self.tuple = tuple
        self.virtualXID = virtualXID
        self.transactionID = transactionID
        self.classID = classID
        self.objectID = objectID
        self.objectSubID = objectSubID
    }

    enum CodingKeys: String, CodingKey {
        case locktype, datname, relationOID = "relation_oid", relationName = "relation", page, tuple
        case virtualXID = "virtual_transaction", transactionID = "transaction", classID = "classid", objectID = "objid"
        case objectSubID = "objsubid", advisoryKey = "advisory_key", description
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(locktype, forKey: .locktype)
        try c.encodeIfPresent(datname, forKey: .datname)
        try c.encodeIfPresent(relationOID, forKey: .relationOID)
        try c.encodeIfPresent(relationName, forKey: .relationName)
        try c.encodeIfPresent(page, forKey: .page)
        try c.encodeIfPresent(tuple, forKey: .tuple)
        try c.encodeIfPresent(virtualXID, forKey: .virtualXID)
        try c.encodeIfPresent(transactionID, forKey: .transactionID)
        try c.encodeIfPresent(classID, forKey: .classID)
        try c.encodeIfPresent(objectID, forKey: .objectID)
        try c.encodeIfPresent(objectSubID, forKey: .objectSubID)
        try c.encodeIfPresent(advisoryKey, forKey: .advisoryKey)
        try c.encode(description, forKey: .description)
    }

    /// The relation as a person reads it: its name, or `relation OID in database NAME`.
    var relationText: String? {
        if let relationName { return relationName }
        return relationOID.map { "relation \($0) in database \(datname ?? "?")" }
    }

    /// `pg_advisory_lock(bigint)` takes classid = high 32 bits, objid = low 32 bits, objsubid 1;
    /// the two-key form `pg_advisory_lock(int, int)` has objsubid 2.
    public var advisoryKey: Int64? {
        guard locktype == "advisory", objectSubID == 1, let classID, let objectID else { return nil }
        return Int64(bitPattern: (UInt64(UInt32(truncatingIfNeeded: classID)) << 32) | UInt64(UInt32(truncatingIfNeeded: objectID)))
    }

    /// One phrase: `public.features`, `row (0,1) of public.features`, `transaction 736`,
    /// `advisory lock 42`, `advisory lock (1, 2)`, `virtual transaction 4/12`, ...
    public var description: String {
        switch locktype {
        case "relation": return relationText ?? "relation"
        case "tuple": return "row (\(page ?? 0),\(tuple ?? 0)) of \(relationText ?? "a relation")"
        case "page": return "page \(page ?? 0) of \(relationText ?? "a relation")"
        case "extend": return "extension of \(relationText ?? "a relation")"
        case "transactionid": return "transaction \(transactionID ?? "?")"
        case "virtualxid": return "virtual transaction \(virtualXID ?? "?")"
        case "advisory":
            if let advisoryKey { return "advisory lock \(advisoryKey)" }
            return "advisory lock (\(classID ?? 0), \(objectID ?? 0))"
        default:
            return "\(locktype) (classid \(classID ?? 0), objid \(objectID ?? 0), objsubid \(objectSubID ?? 0))"
                + (datname.map { " in database \($0)" } ?? "")
        }
    }
}

/// One prepared transaction from `pg_prepared_xacts`.
public struct PreparedTransaction: Sendable, Equatable {
    public var gid: String
    public var datname: String?
    public var owner: String?
    /// Seconds since `PREPARE TRANSACTION`.
    public var ageSeconds: Double?

    public init(gid: String, datname: String?, owner: String?, ageSeconds: Double?) {
        self.gid = gid
        self.datname = datname
        self.owner = owner
        self.ageSeconds = ageSeconds
    }
}

/// What `pg_settings` says: the version, `max_connections` and the guard timeouts.
public struct ServerSettings: Sendable, Equatable {
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    public var versionString: String
    public var maxConnections: Int
    /// Guard settings in seconds (0 = disabled), keyed by setting name.
    /// Guard settings in seconds (0 = disabled), keyed by setting name: `reset_val`, the values
    /// the exporter's own session got at login.
    public var timeouts: [String: Double]
    /// The same settings' built-in defaults (`boot_val`), for when `reset_val` shows an override
    /// of the exporter's own role or database (`GuardSettings`).
    public var bootTimeouts: [String: Double]

    public init(versionString: String, maxConnections: Int, timeouts: [String: Double], bootTimeouts: [String: Double] = [:]) {
        self.versionString = versionString
        self.maxConnections = maxConnections
        self.timeouts = timeouts
        self.bootTimeouts = bootTimeouts
    }
}

/// A guard setting that a role or a database sets for its sessions, as `pg_db_role_setting`
/// holds it: `ALTER ROLE r IN DATABASE d SET`, `ALTER ROLE r SET` (datname nil),
/// `ALTER DATABASE d SET` (rolname nil), `ALTER ROLE ALL SET` (both nil).
public struct RoleSetting: Sendable, Equatable {
    public var datname: String?
    public var rolname: String?
    public var name: String
    /// The value as stored: `30s`, `5min`, `1500` (milliseconds), ...
    public var value: String
    /// The exporter's own session got it at login from its role or database.
    public var appliesToExporter: Bool

    public init(datname: String?, rolname: String?, name: String, value: String, appliesToExporter: Bool = false) {
        self.datname = datname
        self.rolname = rolname
        self.name = name
        self.value = value
        self.appliesToExporter = appliesToExporter
    }
}
