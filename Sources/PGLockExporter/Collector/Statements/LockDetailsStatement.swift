/// Every lock (granted or queued) on an object some session waits for — the waiter's request and
/// what its blockers hold or queue for on the same object — plus the row (tuple) locks the
/// waiters hold: a session waiting on another's transaction id to update a row holds the lock
/// on that row, which names the table. Only `check` reads it, so reading `pg_locks` more than
/// once is affordable here.
struct LockDetailsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_lock_details"

    enum Column: Int, ResultColumn {
        case pid, granted, mode, locktype, relationName, datname, relation, page, tuple, virtualXID, transactionID
        case classID, objectID, objectSubID
    }

    /// Relations are named by `::regclass` (schema-qualified unless on the search path), and only
    /// in our own database (a relation OID means nothing in another); elsewhere the OID and
    /// database are reported instead.
    let sql = """
        WITH waiting AS (SELECT * FROM pg_locks WHERE NOT granted),
        wanted AS (
            SELECT DISTINCT locktype, database, relation, page, tuple, virtualxid, transactionid, classid, objid, objsubid
            FROM waiting)
        SELECT l.pid, l.granted, l.mode, l.locktype,
               CASE WHEN l.relation IS NOT NULL AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    THEN l.relation::regclass::text END,
               d.datname, l.relation::int8, l.page, l.tuple, l.virtualxid, l.transactionid::text,
               l.classid::int8, l.objid::int8, l.objsubid
        FROM pg_locks l
        LEFT JOIN pg_database d ON d.oid = l.database
        WHERE l.pid IS DISTINCT FROM pg_backend_pid()
          AND (EXISTS (SELECT 1 FROM wanted w
                       WHERE (l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, l.transactionid, l.classid, l.objid, l.objsubid)
                             IS NOT DISTINCT FROM
                             (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid))
               OR (l.locktype = 'tuple' AND l.granted AND l.pid IN (SELECT pid FROM waiting)))
        """

    func decode(_ r: borrowing PostgresResult) -> [LockDetail] {
        (0..<r.rowCount).map { row in
            LockDetail(
                pid: Int32(r.int(row, Column.pid) ?? 0), granted: r.bool(row, Column.granted) ?? false,
                mode: r.string(row, Column.mode) ?? "",
                target: LockTarget(
                    locktype: r.string(row, Column.locktype) ?? "", datname: r.string(row, Column.datname),
                    relationOID: r.int(row, Column.relation), relationName: r.string(row, Column.relationName),
                    page: r.int(row, Column.page), tuple: r.int(row, Column.tuple), virtualXID: r.string(row, Column.virtualXID),
                    transactionID: r.string(row, Column.transactionID), classID: r.int(row, Column.classID),
                    objectID: r.int(row, Column.objectID), objectSubID: r.int(row, Column.objectSubID)))
        }
    }
}
