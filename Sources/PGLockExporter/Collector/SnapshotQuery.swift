/// The SQL of one collection, shaped for the server's version, and the decoding of its results.
///
/// Everything comes back in one round trip: the statements go out in libpq's pipeline mode (the
/// exporter's prepared once per connection), so they share one implicit transaction and
/// `pg_stat_activity` is read once (the server caches the activity snapshot for the
/// transaction); `pg_locks` is read once too. No statement carries user input.
public struct SnapshotQuery: Sendable {
    public let serverVersion: Int
    /// Characters of query text to read per session; 0 leaves the column out (the exporter never
    /// reads query text, `check` does).
    public let queryCharacters: Int

    /// Also read which lock each waiter wants and who holds or queues for the same object
    /// (`check` draws it; the exporter does not need it).
    public let lockDetails: Bool

    /// Also read `backend_start` and `state_change` as text: the identity a termination re-checks
    /// (`remediate`, `check`). The exporter leaves them out: no metric needs them.
    public let identity: Bool

    /// Also read the guard settings (`pg_settings`); the exporter reads them once a minute.
    public let settings: Bool

    public init(
        serverVersion: Int, queryCharacters: Int = 0, lockDetails: Bool = false, identity: Bool = true, settings: Bool = true
    ) {
        self.serverVersion = serverVersion
        self.queryCharacters = max(0, queryCharacters)
        self.lockDetails = lockDetails
        self.identity = identity
        self.settings = settings
    }

    /// The statements of the batch, in order (the `SET` before them is not listed).
    enum Statement: Sendable {
        case sessions, locks, databases, settings, lockDetails
    }

    var statements: [Statement] {
        [.sessions, .locks, .databases] + (settings ? [.settings] : []) + (lockDetails ? [.lockDetails] : [])
    }

    /// `pg_locks.waitstart` exists from PostgreSQL 14.
    var hasWaitStart: Bool { serverVersion >= 140000 }
    /// `pg_stat_database` session counters exist from PostgreSQL 14.
    var hasSessionCounters: Bool { serverVersion >= 140000 }
    /// `transaction_timeout` exists from PostgreSQL 17.
    var hasTransactionTimeout: Bool { serverVersion >= 170000 }

    /// The settings reported by `pg_setting_seconds`, all in milliseconds on the server.
    var timeoutSettings: [String] {
        var names = ["idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout"]
        if hasTransactionTimeout { names.append("transaction_timeout") }
        return names
    }

    /// Sets this collection's statement timeout: the first statement of every collection, so
    /// result index 0 is never a snapshot statement.
    static let timeoutSQL = "SELECT set_config('statement_timeout', $1, false)"

    /// The statements of one collection with their parameters, for `executePipelined`.
    public func pipelined(statementTimeoutMilliseconds: Int) -> [(sql: String, parameters: [String?])] {
        [(Self.timeoutSQL, [String(max(1, statementTimeoutMilliseconds))])] + statements.map { (sql(for: $0), []) }
    }

    func sql(for statement: Statement) -> String {
        switch statement {
        case .sessions: sessionsSQL
        case .locks: locksSQL
        case .databases: databasesSQL
        case .settings: settingsSQL
        case .lockDetails: lockDetailsSQL
        }
    }

    /// Names under which the exporter prepares its statements once per connection, so a scrape
    /// neither sends nor plans SQL text (`PostgresConnection.executePrepared`).
    static let preparedTimeout = "pg_lock_exporter_timeout"

    static func preparedName(_ statement: Statement) -> String { "pg_lock_exporter_\(statement)" }

    /// Every statement this query can send, to prepare on a new connection.
    public var preparedStatements: [(name: String, sql: String)] {
        [(Self.preparedTimeout, Self.timeoutSQL)]
            + statements.map { (Self.preparedName($0), sql(for: $0)) }
    }

    /// The calls of one collection: the timeout first (result index 0, like the batch's `SET`).
    public func preparedCalls(statementTimeoutMilliseconds: Int) -> [PostgresConnection.PreparedCall] {
        [.init(Self.preparedTimeout, [String(max(1, statementTimeoutMilliseconds))])]
            + statements.map { .init(Self.preparedName($0)) }
    }

    /// Every backend but ours. `pg_blocking_pids()` only for lock waiters: it takes the lock
    /// manager's partition locks, so calling it for every row would stall the server.
    var sessionsSQL: String {
        let query = queryCharacters > 0 ? "left(a.query, \(queryCharacters))" : "NULL::text"
        let identityColumns = identity ? "a.backend_start::text, a.state_change::text" : "NULL::text, NULL::text"
        return """
            SELECT a.pid, a.datname, a.usename, a.application_name,
                   coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, ''),
                   a.backend_type, a.state,
                   extract(epoch FROM now() - a.state_change),
                   extract(epoch FROM now() - a.xact_start),
                   a.wait_event_type = 'Lock',
                   CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END,
                   \(identityColumns), \(query)
            FROM pg_stat_activity a
            WHERE a.pid <> pg_backend_pid()
            """
    }

    /// One read of `pg_locks` for two answers: lock counts (locks without a database, such as
    /// transaction ids, or on shared catalogs get datname ''), and, from 14, each waiter's
    /// longest wait from `waitstart` (rows with a pid). Reading it once matters: every read
    /// takes all the lock manager's partition locks in turn.
    var locksSQL: String {
        let waits = hasWaitStart
            ? """

              UNION ALL
              SELECT NULL, NULL, NULL, NULL, pid, extract(epoch FROM now() - min(waitstart))
              FROM l WHERE NOT granted AND pid IS NOT NULL GROUP BY pid
              """
            : ""
        return """
            WITH l AS MATERIALIZED (
                SELECT database, mode, granted, pid\(hasWaitStart ? ", waitstart" : "")
                FROM pg_locks WHERE pid IS DISTINCT FROM pg_backend_pid())
            SELECT coalesce(d.datname, ''), l.mode, l.granted, count(*), NULL::int, NULL::float8
            FROM l LEFT JOIN pg_database d ON d.oid = l.database
            GROUP BY 1, 2, 3\(waits)
            """
    }

    var databasesSQL: String {
        let counters = hasSessionCounters
            ? "s.idle_in_transaction_time / 1000.0, s.sessions_killed, s.sessions_abandoned"
            : "NULL::float8, NULL::float8, NULL::float8"
        return """
            SELECT d.datname, s.deadlocks, \(counters)
            FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
            WHERE d.datallowconn AND NOT d.datistemplate
            ORDER BY d.datname
            """
    }

    /// `reset_val`, not `setting`: the exporter sets its own statement and lock timeouts, and the
    /// metric must show what other sessions get.
    var settingsSQL: String {
        let names = (["max_connections", "server_version"] + timeoutSettings).map { "'\($0)'" }.joined(separator: ", ")
        return "SELECT name, reset_val FROM pg_settings WHERE name IN (\(names))"
    }

    /// Every lock (granted or queued) on an object some session waits for: the waiter's request,
    /// and what its blockers hold or queue for on the same object. `::regclass` names relations
    /// only in our own database; elsewhere the OID and database are reported instead.
    var lockDetailsSQL: String {
        """
        WITH wanted AS (
            SELECT DISTINCT locktype, database, relation, page, tuple, virtualxid, transactionid, classid, objid, objsubid
            FROM pg_locks WHERE NOT granted)
        SELECT l.pid, l.granted, l.mode, l.locktype,
               CASE WHEN l.relation IS NOT NULL AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    THEN l.relation::regclass::text END,
               d.datname, l.relation::int8, l.transactionid::text, l.virtualxid, l.page, l.tuple, l.objid::int8
        FROM pg_locks l
        JOIN wanted w ON (l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, l.transactionid, l.classid, l.objid, l.objsubid)
            IS NOT DISTINCT FROM
            (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid)
        LEFT JOIN pg_database d ON d.oid = l.database
        WHERE l.pid IS DISTINCT FROM pg_backend_pid()
        """
    }

    /// Builds the snapshot from the batch's results (index 0 is the `SET`).
    public struct Decoder {
        let query: SnapshotQuery
        public private(set) var sessions: [Session] = []
        public private(set) var locks: [LockCount] = []
        public private(set) var databases: [DatabaseStats] = []
        public private(set) var lockDetails: [LockDetail] = []
        var settings: [String: String] = [:]
        /// pid → seconds since `pg_locks.waitstart` (14+).
        var waitSeconds: [Int32: Double] = [:]
        private let statements: [Statement]

        public init(_ query: SnapshotQuery) {
            self.query = query
            self.statements = query.statements
        }

        /// Reads the result of statement `index` (0 is the statement timeout).
        public mutating func read(_ index: Int, _ result: borrowing PostgresResult) {
            guard index >= 1, index <= statements.count else { return }
            switch statements[index - 1] {
            case .sessions: readSessions(result)
            case .locks: readLocks(result)
            case .databases: readDatabases(result)
            case .settings:
                for row in 0..<result.rowCount {
                    if let name = result.string(row, 0) { settings[name] = result.string(row, 1) }
                }
            case .lockDetails: readLockDetails(result)
            }
        }

        mutating func readLockDetails(_ r: borrowing PostgresResult) {
            for row in 0..<r.rowCount {
                let locktype = r.string(row, 3) ?? ""
                let object: String
                if let name = r.string(row, 4) {
                    object = locktype == "tuple" ? "a row of \(name)" : name
                } else if let relation = r.string(row, 6) {
                    object = "relation \(relation) in database \(r.string(row, 5) ?? "?")"
                } else if let xid = r.string(row, 7) {
                    object = "transaction \(xid)"
                } else if let vxid = r.string(row, 8) {
                    object = "virtual transaction \(vxid)"
                } else if let objid = r.string(row, 11) {
                    object = "\(locktype) \(objid)"
                } else {
                    object = locktype
                }
                lockDetails.append(
                    LockDetail(pid: Int32(r.int(row, 0) ?? 0), granted: r.bool(row, 1) ?? false, mode: r.string(row, 2) ?? "", object: object))
            }
        }

        mutating func readSessions(_ r: borrowing PostgresResult) {
            sessions.reserveCapacity(r.rowCount)
            for row in 0..<r.rowCount {
                let waiting = r.bool(row, 9) ?? false
                var blockers = r.int32Array(row, 10) ?? []
                if blockers.count > 1 {
                    // Parallel query repeats the leader's pid once per worker.
                    var seen = Set<Int32>()
                    blockers = blockers.filter { seen.insert($0).inserted }
                }
                let state = r.string(row, 6)
                sessions.append(
                    Session(
                        pid: Int32(r.int(row, 0) ?? 0),
                        datname: r.string(row, 1),
                        usename: r.string(row, 2),
                        applicationName: r.string(row, 3) ?? "",
                        clientAddr: r.string(row, 4) ?? "",
                        backendType: r.string(row, 5),
                        state: state,
                        stateSeconds: r.double(row, 7),
                        transactionSeconds: r.double(row, 8),
                        waitingOnLock: waiting,
                        blockedBy: blockers,
                        lockWaitSeconds: nil,  // from the locks statement, in snapshot()
                        backendStart: r.string(row, 11),
                        stateChange: r.string(row, 12),
                        query: r.string(row, 13)
                    ))
            }
        }

        mutating func readLocks(_ r: borrowing PostgresResult) {
            for row in 0..<r.rowCount {
                if let pid = r.int(row, 4) {
                    waitSeconds[Int32(pid)] = r.double(row, 5)
                    continue
                }
                locks.append(
                    LockCount(
                        datname: r.string(row, 0) ?? "", mode: r.string(row, 1) ?? "",
                        granted: r.bool(row, 2) ?? false, count: r.int(row, 3) ?? 0))
            }
        }

        mutating func readDatabases(_ r: borrowing PostgresResult) {
            for row in 0..<r.rowCount {
                databases.append(
                    DatabaseStats(
                        datname: r.string(row, 0) ?? "", deadlocks: r.double(row, 1),
                        idleInTransactionSeconds: r.double(row, 2), sessionsKilled: r.double(row, 3),
                        sessionsAbandoned: r.double(row, 4)))
            }
        }

        public func snapshot() -> ActivitySnapshot {
            var sessions = sessions
            for index in sessions.indices where sessions[index].waitingOnLock {
                // Before 14 there is no waitstart: the best available is the waiter's state_change.
                sessions[index].lockWaitSeconds = waitSeconds[sessions[index].pid] ?? sessions[index].stateSeconds
            }
            var snapshot = ActivitySnapshot(
                serverVersion: query.serverVersion, serverVersionString: "", sessions: sessions, locks: locks,
                databases: databases, lockDetails: lockDetails, maxConnections: 0, timeouts: [:])
            if query.settings {
                var timeouts: [String: Double] = [:]
                for name in query.timeoutSettings {
                    timeouts[name] = (settings[name].flatMap(Double.init) ?? 0) / 1000
                }
                snapshot.settings = ServerSettings(
                    versionString: settings["server_version"] ?? "",
                    maxConnections: settings["max_connections"].flatMap { Int($0) } ?? 0, timeouts: timeouts)
            }
            return snapshot
        }
    }
}
