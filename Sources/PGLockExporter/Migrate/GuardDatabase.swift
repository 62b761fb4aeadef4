/// Every statement the migration guard sends, on its own connection: the one place `migrate`
/// talks to PostgreSQL. The connection stays in autocommit and never takes a relation lock; the
/// only lock it holds is the session-level advisory lock that keeps migrations one at a time.
///
/// Used from one thread only (the guard's), so it is not `Sendable`.
final class GuardDatabase {
    private let connection: PostgresConnection
    let statementTimeoutMilliseconds: Int

    init(_ settings: ConnectionSettings) throws {
        connection = try PostgresConnection(settings)
        statementTimeoutMilliseconds = settings.statementTimeoutMilliseconds
    }

    var backendPID: Int32 { connection.backendPID }
    var database: String { connection.database }

    /// The snapshot `check` reads, through the same query path: sessions, their waits and
    /// `pg_blocking_pids()`, optionally the locks on contended objects.
    func snapshot(queryCharacters: Int, lockDetails: Bool) throws -> ActivitySnapshot {
        try connection.readSnapshot(
            queryCharacters: queryCharacters, lockDetails: lockDetails, identity: true, settings: false,
            statementTimeoutMilliseconds: statementTimeoutMilliseconds)
    }

    /// Sessions idle in transaction that hold a lock on a relation: what a migration would
    /// queue behind (every transaction holds its own transaction-id locks; those don't count).
    func idleInTransactionHoldingRelationLocks() throws -> Set<Int32> {
        try connection.execute(
            """
            SELECT a.pid FROM pg_stat_activity a
            WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)') AND a.pid <> pg_backend_pid()
              AND EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted)
            """
        ) { r in Set((0..<r.rowCount).compactMap { r.int($0, 0).map(Int32.init) }) }
    }

    /// The server's clock, as text the server reads back: sessions that started before an
    /// attempt are not the attempt's even when a port matches.
    func now() throws -> String {
        try connection.execute("SELECT now()::text") { $0.string(0, 0) ?? "" }
    }

    /// The migration's sessions: client backends in the guard's database, started at or after
    /// `since` (the attempt's start, on the server's clock), whose `(client_addr, client_port)`
    /// is the local end of a connected socket of the migration's processes, or whose
    /// `application_name` is this run's random `tag`. A port alone proves nothing: the same
    /// port number is any other host's or address's to use.
    ///
    /// `pooled` are the `(client_addr, client_port)` of server connections that PgBouncer said
    /// serve the migration's sockets now (`PoolerJoin.backendEndpoints`): a pooled backend may
    /// have started long before the attempt, so those are not held to `since`.
    func migrationSessions(
        tag: String?, endpoints: Set<ProcessTreePorts.Endpoint>, pooled: Set<ProcessTreePorts.Endpoint> = [], since: String
    ) throws -> Set<Int32> {
        func arrays(_ set: Set<ProcessTreePorts.Endpoint>) -> (String, String) {
            let sorted = set.sorted { ($0.address, $0.port) < ($1.address, $1.port) }
            return ("{" + sorted.map { "\"\($0.address)\"" }.joined(separator: ",") + "}", "{" + sorted.map { String($0.port) }.joined(separator: ",") + "}")
        }
        let (addresses, ports) = arrays(endpoints)
        let (pooledAddresses, pooledPorts) = arrays(pooled)
        return try connection.execute(
            """
            SELECT pid FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database()
              AND ((backend_start >= $4::timestamptz
                    AND (application_name = $1
                         OR (client_addr, client_port) IN (SELECT * FROM unnest($2::inet[], $3::int[]))))
                   OR (client_addr, client_port) IN (SELECT * FROM unnest($5::inet[], $6::int[])))
            """, [tag, addresses, ports, since, pooledAddresses, pooledPorts]
        ) { r in Set((0..<r.rowCount).compactMap { r.int($0, 0).map(Int32.init) }) }
    }

    /// `pg_try_advisory_lock(key)`: never waits.
    func tryAdvisoryLock(_ key: Int64) throws -> Bool {
        try connection.execute("SELECT pg_try_advisory_lock($1::bigint)", [String(key)]) { $0.bool(0, 0) ?? false }
    }

    /// Who holds the session-level advisory lock `key` (a bigint key is stored as classid = high
    /// 32 bits, objid = low 32 bits, objsubid = 1).
    func advisoryLockHolder(_ key: Int64) throws -> (pid: Int32, applicationName: String)? {
        try connection.execute(
            """
            SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid
            LIMIT 1
            """, [String(key)]
        ) { r in r.rowCount == 0 ? nil : (Int32(r.int(0, 0) ?? 0), r.string(0, 1) ?? "") }
    }

    /// Cancels the session's statement only while it is the same session (pid and
    /// `backend_start`), a client backend in the guard's database, and still waits on a lock: a
    /// reused pid, or a wait that just ended, is left alone. True when it was signalled.
    func cancelLockWait(pid: Int32, backendStart: String) throws -> Bool {
        try connection.execute(
            """
            SELECT pg_cancel_backend(pid) FROM pg_stat_activity
            WHERE pid = $1::int AND backend_start = $2::timestamptz AND wait_event_type = 'Lock'
              AND backend_type = 'client backend' AND datname = current_database()
            """, [String(pid), backendStart]
        ) { r in r.rowCount == 1 && r.bool(0, 0) == true }
    }

    /// Carries out termination decisions with `remediate --execute`'s own guarded statement.
    func terminate(_ decisions: inout [Decision], policy: RemediationPolicy) {
        Remediator(policy: policy, execute: true, statementTimeoutMilliseconds: statementTimeoutMilliseconds)
            .carryOut(&decisions, on: connection)
    }
}
