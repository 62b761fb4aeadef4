/// The background sampler's one cheap aggregate: per connectable database, how many client
/// sessions are blocked and how many idle in transaction, by the same rules as the snapshot
/// (`SessionRules`), without a row per session.
struct SamplerStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_sample"

    struct Row: Equatable {
        var datname: String
        var blocked: Int
        var idleInTransaction: Int
    }

    enum Column: Int, ResultColumn {
        case datname, blocked, idleInTransaction
    }

    let sql = """
        SELECT d.datname,
               count(a.pid) FILTER (WHERE \(SessionRules.isBlocked("a"))),
               count(a.pid) FILTER (WHERE \(SessionRules.isIdleInTransaction("a")))
        FROM pg_database d
        LEFT JOIN pg_stat_activity a ON a.datid = d.oid AND \(SessionRules.isClient("a")) AND a.pid <> pg_backend_pid()
        WHERE d.datallowconn AND NOT d.datistemplate
        GROUP BY d.datname
        """

    func decode(_ r: borrowing PostgresResult) -> [Row] {
        (0..<r.rowCount).map { row in
            Row(
                datname: r.string(row, Column.datname) ?? "", blocked: r.int(row, Column.blocked) ?? 0,
                idleInTransaction: r.int(row, Column.idleInTransaction) ?? 0)
        }
    }
}
