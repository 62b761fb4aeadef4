/// Every prepared transaction (`PREPARE TRANSACTION`): no backend runs it, yet it holds its locks
/// until someone runs `COMMIT PREPARED` or `ROLLBACK PREPARED`.
struct PreparedTransactionsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_prepared_xacts"

    enum Column: Int, ResultColumn {
        case gid, datname, owner, ageSeconds
    }

    let sql = """
        SELECT gid, database, owner, date_part('epoch', now() - prepared) FROM pg_prepared_xacts ORDER BY gid
        """

    func decode(_ r: borrowing PostgresResult) -> [PreparedTransaction] {
        (0..<r.rowCount).map { row in
            PreparedTransaction(
                gid: r.string(row, Column.gid) ?? "", datname: r.string(row, Column.datname), owner: r.string(row, Column.owner),
                ageSeconds: r.double(row, Column.ageSeconds))
        }
    }
}
