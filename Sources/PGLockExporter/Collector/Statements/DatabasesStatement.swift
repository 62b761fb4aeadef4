/// The connectable databases, in name order, with their `pg_stat_database` counters (the
/// session counters exist from PostgreSQL 14).
struct DatabasesStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_databases"

    enum Column: Int, ResultColumn {
        case datname, deadlocks, idleInTransactionSeconds, sessionsKilled, sessionsAbandoned, sessionsFatal
    }

    let sql = """
        SELECT d.datname, s.deadlocks, s.idle_in_transaction_time / 1000.0, s.sessions_killed, s.sessions_abandoned, s.sessions_fatal
        FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
        WHERE d.datallowconn AND NOT d.datistemplate
        ORDER BY d.datname
        """

    func decode(_ r: borrowing PostgresResult) -> [DatabaseStats] {
        (0..<r.rowCount).map { row in
            DatabaseStats(
                datname: r.string(row, Column.datname) ?? "", deadlocks: r.double(row, Column.deadlocks),
                idleInTransactionSeconds: r.double(row, Column.idleInTransactionSeconds),
                sessionsKilled: r.double(row, Column.sessionsKilled),
                sessionsAbandoned: r.double(row, Column.sessionsAbandoned), sessionsFatal: r.double(row, Column.sessionsFatal))
        }
    }
}
