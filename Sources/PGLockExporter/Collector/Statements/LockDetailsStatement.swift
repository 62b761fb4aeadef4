/// Every lock (granted or queued) on an object some session waits for: the waiter's request, and
/// what its blockers hold or queue for on the same object. Only `check` reads it.
struct LockDetailsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_lock_details"

    enum Column: Int, ResultColumn {
        case pid, granted, mode, locktype, relationName, datname, relation, transactionID, virtualXID, page, tuple, objid
    }

    /// `::regclass` names relations only in our own database; elsewhere the OID and database
    /// are reported instead.
    let sql = """
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

    func decode(_ r: borrowing PostgresResult) -> [LockDetail] {
        (0..<r.rowCount).map { row in
            let locktype = r.string(row, Column.locktype) ?? ""
            let object: String
            if let name = r.string(row, Column.relationName) {
                object = locktype == "tuple" ? "a row of \(name)" : name
            } else if let relation = r.string(row, Column.relation) {
                object = "relation \(relation) in database \(r.string(row, Column.datname) ?? "?")"
            } else if let xid = r.string(row, Column.transactionID) {
                object = "transaction \(xid)"
            } else if let vxid = r.string(row, Column.virtualXID) {
                object = "virtual transaction \(vxid)"
            } else if let objid = r.string(row, Column.objid) {
                object = "\(locktype) \(objid)"
            } else {
                object = locktype
            }
            return LockDetail(
                pid: Int32(r.int(row, Column.pid) ?? 0), granted: r.bool(row, Column.granted) ?? false,
                mode: r.string(row, Column.mode) ?? "", object: object)
        }
    }
}
