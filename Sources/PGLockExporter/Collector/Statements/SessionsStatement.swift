/// Every backend of `pg_stat_activity` but ours: who, in which state since when, and whom it
/// waits for.
struct SessionsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_sessions"

    /// Characters of query text per session; 0 leaves the column out (the exporter never reads
    /// query text, `check` does).
    let queryCharacters: Int
    /// Also read `backend_start` and `state_change` as text: the identity a termination
    /// re-checks (`remediate`, `check`). The exporter leaves them out: no metric needs them.
    let identity: Bool

    enum Column: Int, ResultColumn {
        case pid, datname, usename, applicationName, clientAddr, backendType, state
        case stateSeconds, transactionSeconds, waitingOnLock, blockedBy, backendStart, stateChange, query, leaderPID, transactionStart
        case clientPort
    }

    /// Ages are computed on the server against one `now()` (the transaction's start, the same
    /// for every row), so they are consistent with each other; as `date_part`, a float8
    /// (`extract` returns numeric since PostgreSQL 14, slower to compute, print and parse).
    /// The view, not `pg_stat_get_activity(NULL)` with names looked up apart: its joins cost
    /// about 0.2 ms at 750 sessions, and the role names are in `pg_authid`, which `pg_monitor`
    /// cannot read (`make bench`).
    var sql: String {
        let query = queryCharacters > 0 ? "left(a.query, \(queryCharacters))" : "NULL::text"
        let identityColumns = identity ? "a.backend_start::text, a.state_change::text" : "NULL::text, NULL::text"
        let transactionStart = identity ? "a.xact_start::text" : "NULL::text"
        return """
            SELECT a.pid, a.datname, a.usename, a.application_name,
                   coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, ''),
                   a.backend_type, a.state,
                   date_part('epoch', now() - a.state_change),
                   date_part('epoch', now() - a.xact_start),
                   \(SessionRules.waitsOnLock("a")),
                   CASE WHEN \(SessionRules.waitsOnLock("a")) THEN pg_blocking_pids(a.pid) END,
                   \(identityColumns), \(query), a.leader_pid, \(transactionStart),
                   nullif(a.client_port, -1)
            FROM pg_stat_activity a
            WHERE a.pid <> pg_backend_pid()
            """
    }

    /// Each row is built in its place in the array (moved there, never copied: a `Session`
    /// is some 250 bytes, and `append` copied each once more).
    func decode(_ r: borrowing PostgresResult) -> [Session] {
        let rowCount = r.rowCount
        return [Session](unsafeUninitializedCapacity: rowCount) { buffer, initialized in
            for row in 0..<rowCount {
                buffer.baseAddress!.advanced(by: row).initialize(to: session(r, row))
                initialized = row + 1
            }
        }
    }

    private func session(_ r: borrowing PostgresResult, _ row: Int) -> Session {
        var blockers = r.int32Array(row, Column.blockedBy) ?? []
        if blockers.count > 1 {
            // Parallel query repeats the leader's pid once per worker.
            var seen = Set<Int32>()
            blockers = blockers.filter { seen.insert($0).inserted }
        }
        return Session(
            pid: Int32(r.int(row, Column.pid) ?? 0),
            datname: r.string(row, Column.datname),
            usename: r.string(row, Column.usename),
            applicationName: r.string(row, Column.applicationName) ?? "",
            clientAddr: r.string(row, Column.clientAddr) ?? "",
            backendType: r.string(row, Column.backendType),
            state: r.string(row, Column.state),
            stateSeconds: r.double(row, Column.stateSeconds),
            transactionSeconds: r.double(row, Column.transactionSeconds),
            waitingOnLock: r.bool(row, Column.waitingOnLock) ?? false,
            blockedBy: blockers,
            lockWaitSeconds: nil,  // from LocksStatement, joined in SessionAssembly
            backendStart: r.string(row, Column.backendStart),
            stateChange: r.string(row, Column.stateChange),
            query: r.string(row, Column.query),
            leaderPID: r.int(row, Column.leaderPID).map { Int32($0) },
            transactionStart: r.string(row, Column.transactionStart),
            clientPort: r.int(row, Column.clientPort))
    }
}
