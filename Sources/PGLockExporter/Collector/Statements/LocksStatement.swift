/// One read of `pg_locks` for every lock fact a collection needs, each row tagged with its kind:
///
/// - `count`: locks by database, mode and grant (locks without a database, such as transaction
///   ids, or on shared catalogs get datname '');
/// - `wait`: per waiter, the longest wait from `waitstart`, the mode and kind of lock it asked for,
///   and the relation it queues on: the one
///   its ungranted lock names, or for a row lock (a wait on a transaction id) the relation of
///   the tuple lock it holds. Named by `::regclass` (schema-qualified unless on the search
///   path) where our connection can (its own database: an OID means nothing in another), else
///   `oid:<n>`;
/// - `prepared`: a waiter and the `gid` of a prepared transaction holding a lock on the object it
///   waits for. `pg_blocking_pids()` reports such a holder only as pid 0; a prepared
///   transaction's locks share the `virtualtransaction` of its own transaction-id lock, which
///   `pg_prepared_xacts.transaction` names;
/// - `holder`: on a hot standby, the startup process and each backend holding a granted lock on
///   the relation it waits for. `pg_blocking_pids()` cannot see an auxiliary process's waits
///   (it returns nothing for the startup process), and the startup process only ever waits for
///   an `AccessExclusiveLock`, which every granted lock on the relation conflicts with.
///
/// Reading `pg_locks` once matters: every read takes all the lock manager's partition locks in
/// turn. The joins of the last two kinds run only over waiters and prepared or startup locks,
/// which are few, and each sits behind a one-time filter that is false on almost every server:
/// `prepared` needs a lock without a pid (only prepared transactions hold those), `holder` a
/// server in recovery (only then is there a startup process). Without the second, the branch
/// read `pg_stat_activity` a second time at every scrape to look for a startup process: at 750
/// sessions that was 2 of the statement's 7.7 ms (`make bench`, EXPLAIN ANALYZE). Both guards
/// are uncorrelated `EXISTS`, which the planner evaluates once, before the branch.
///
/// `waits` needs no grouping: a backend waits for one lock at a time (`PGPROC.waitLock`), so
/// each waiter has exactly one ungranted row, and the tuple lock a row-lock waiter holds joins
/// by pid. (Grouping with `array_agg(… ORDER BY …)` started a sort per waiter: at 750 sessions
/// 250 sorts, 0.4 of the statement's 2.7 ms.) `count` groups by database oid first and names
/// the few groups, instead of joining `pg_database` for every lock. Ages are `date_part`, a
/// float8: `extract` returns numeric since PostgreSQL 14, slower to compute and to print.
struct LocksStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_locks"

    struct Rows {
        var counts: [LockCount] = []
        /// pid → what it waits for.
        var waits: [Int32: Wait] = [:]
        /// waiter pid → gids of the prepared transactions in its way.
        var preparedHolders: [Int32: [String]] = [:]
        /// startup pid → pids holding the relation it waits for.
        var startupHolders: [Int32: [Int32]] = [:]
    }

    struct Wait: Equatable {
        var seconds: Double?
        var relation: String?
        var datname: String?
        /// The mode it asked for and the kind of object (`relation`, `transactionid`, `tuple`, …).
        var mode: String? = nil
        var locktype: String? = nil
    }

    enum Column: Int, ResultColumn {
        case kind, datname, mode, granted, count, pid, waitSeconds, relation, holderPID, gid, locktype
    }

    let sql = """
        WITH l AS MATERIALIZED (
            SELECT locktype, database, relation, page, tuple, virtualxid, transactionid, classid, objid, objsubid,
                   virtualtransaction, pid, mode, granted, waitstart
            FROM pg_locks WHERE pid IS DISTINCT FROM pg_backend_pid()),
        waiting AS (SELECT * FROM l WHERE NOT granted AND pid IS NOT NULL),
        waits AS (
            SELECT w.pid, w.waitstart, w.mode, w.locktype, coalesce(w.relation, t.relation) AS relation,
                   CASE WHEN w.relation IS NOT NULL THEN w.database ELSE t.database END AS database
            FROM waiting w
            LEFT JOIN l t ON w.relation IS NULL AND t.pid = w.pid AND t.locktype = 'tuple' AND t.granted)
        SELECT 'count', coalesce(d.datname, ''), c.mode, c.granted, sum(c.n)::int8, NULL::int, NULL::float8, NULL::text, NULL::int, NULL::text,
               NULL::text
        FROM (SELECT database, mode, granted, count(*) AS n FROM l GROUP BY 1, 2, 3) c LEFT JOIN pg_database d ON d.oid = c.database
        GROUP BY 2, 3, 4
        UNION ALL
        SELECT 'wait', d.datname, w.mode, NULL, NULL, w.pid, date_part('epoch', now() - w.waitstart),
               CASE WHEN w.relation IS NULL THEN NULL
                    WHEN d.datname = current_database() THEN w.relation::regclass::text
                    ELSE 'oid:' || w.relation END,
               NULL, NULL, w.locktype
        FROM waits w LEFT JOIN pg_database d ON d.oid = w.database
        UNION ALL
        SELECT 'prepared', NULL, NULL, NULL, NULL, w.pid, NULL, NULL, NULL, p.gid, NULL
        FROM waiting w
        JOIN l h ON h.pid IS NULL AND h.granted
             AND (h.locktype, h.database, h.relation, h.page, h.tuple, h.virtualxid, h.transactionid, h.classid, h.objid, h.objsubid)
                 IS NOT DISTINCT FROM
                 (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid)
        JOIN l x ON x.pid IS NULL AND x.locktype = 'transactionid' AND x.virtualtransaction = h.virtualtransaction
        JOIN pg_prepared_xacts p ON p.transaction = x.transactionid
        WHERE EXISTS (SELECT FROM l WHERE l.pid IS NULL)
        GROUP BY w.pid, p.gid
        UNION ALL
        SELECT 'holder', NULL, NULL, NULL, NULL, w.pid, NULL, NULL, h.pid, NULL, NULL
        FROM waiting w
        JOIN l h ON h.granted AND h.pid IS NOT NULL AND h.pid <> w.pid AND h.locktype = 'relation'
             AND h.database IS NOT DISTINCT FROM w.database AND h.relation = w.relation
        WHERE w.locktype = 'relation' AND EXISTS (SELECT WHERE pg_is_in_recovery())
          AND w.pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup')
        GROUP BY w.pid, h.pid
        """

    func decode(_ r: borrowing PostgresResult) -> Rows {
        var rows = Rows()
        for row in 0..<r.rowCount {
            let pid = r.int(row, Column.pid).map { Int32($0) }
            switch r.string(row, Column.kind) {
            case "count":
                rows.counts.append(
                    LockCount(
                        datname: r.string(row, Column.datname) ?? "", mode: r.string(row, Column.mode) ?? "",
                        granted: r.bool(row, Column.granted) ?? false, count: r.int(row, Column.count) ?? 0))
            case "wait":
                guard let pid else { continue }
                rows.waits[pid] = Wait(
                    seconds: r.double(row, Column.waitSeconds), relation: r.string(row, Column.relation),
                    datname: r.string(row, Column.datname), mode: r.string(row, Column.mode),
                    locktype: r.string(row, Column.locktype))
            case "prepared":
                guard let pid, let gid = r.string(row, Column.gid) else { continue }
                rows.preparedHolders[pid, default: []].append(gid)
            case "holder":
                guard let pid, let holder = r.int(row, Column.holderPID) else { continue }
                rows.startupHolders[pid, default: []].append(Int32(holder))
            default:
                continue
            }
        }
        for key in rows.preparedHolders.keys { rows.preparedHolders[key]!.sort() }
        for key in rows.startupHolders.keys { rows.startupHolders[key]!.sort() }
        return rows
    }
}
