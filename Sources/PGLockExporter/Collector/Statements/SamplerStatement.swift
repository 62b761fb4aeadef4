/// The background sampler's one cheap aggregate: per connectable database, how many sessions are
/// blocked (any backend, a parallel worker counted as its leader) and how many client sessions
/// are idle in transaction, by the same rules as the snapshot (`SessionRules`), without a row per
/// session. It reads no `pg_locks`, so it leaves out the one blocked process that only
/// `pg_locks` can show: a hot standby's startup process, which has no database of its own.
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
               count(DISTINCT coalesce(a.leader_pid, a.pid)) FILTER (WHERE \(SessionRules.isBlocked("a"))),
               count(a.pid) FILTER (WHERE \(SessionRules.isClient("a")) AND \(SessionRules.isIdleInTransaction("a")))
        FROM pg_database d
        LEFT JOIN pg_stat_activity a ON a.datid = d.oid AND a.pid <> pg_backend_pid()
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
