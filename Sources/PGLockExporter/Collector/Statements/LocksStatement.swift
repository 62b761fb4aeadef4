/// One read of `pg_locks` for two answers: lock counts by database, mode and grant, and each
/// waiter's longest wait from `waitstart` (PostgreSQL 14+). Reading it once matters: every read
/// takes all the lock manager's partition locks in turn.
struct LocksStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_locks"

    struct Rows {
        var counts: [LockCount] = []
        /// pid → seconds since `pg_locks.waitstart`.
        var waitSeconds: [Int32: Double] = [:]
    }

    enum Column: Int, ResultColumn {
        case datname, mode, granted, count, waiterPID, waitSeconds
    }

    /// Locks without a database (transaction ids) or on shared catalogs get datname ''. Count
    /// rows have a NULL waiter pid; wait rows have NULL in the count columns.
    let sql = """
        WITH l AS MATERIALIZED (
            SELECT database, mode, granted, pid, waitstart
            FROM pg_locks WHERE pid IS DISTINCT FROM pg_backend_pid())
        SELECT coalesce(d.datname, ''), l.mode, l.granted, count(*), NULL::int, NULL::float8
        FROM l LEFT JOIN pg_database d ON d.oid = l.database
        GROUP BY 1, 2, 3
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, pid, extract(epoch FROM now() - min(waitstart))
        FROM l WHERE NOT granted AND pid IS NOT NULL GROUP BY pid
        """

    func decode(_ r: borrowing PostgresResult) -> Rows {
        var rows = Rows()
        for row in 0..<r.rowCount {
            if let pid = r.int(row, Column.waiterPID) {
                rows.waitSeconds[Int32(pid)] = r.double(row, Column.waitSeconds)
                continue
            }
            rows.counts.append(
                LockCount(
                    datname: r.string(row, Column.datname) ?? "", mode: r.string(row, Column.mode) ?? "",
                    granted: r.bool(row, Column.granted) ?? false, count: r.int(row, Column.count) ?? 0))
        }
        return rows
    }
}
