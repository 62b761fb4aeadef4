/// The product's vocabulary as SQL, for statements that aggregate on the server instead of
/// returning a row per session (the background sampler). Each predicate is the exact SQL twin
/// of a `Session` property, so a count made on the server and one made from a snapshot agree.
enum SessionRules {
    /// `Session.isClient`: a client backend, or a row whose state is hidden from us but that has
    /// a database and a user (hidden background processes have neither).
    static func isClient(_ a: String) -> String {
        "(\(a).backend_type = 'client backend' OR (\(a).backend_type IS NULL AND \(a).state IS NULL AND \(a).datname IS NOT NULL AND \(a).usename IS NOT NULL))"
    }

    /// `Session.waitingOnLock`: waiting on a heavyweight lock.
    static func waitsOnLock(_ a: String) -> String { "\(a).wait_event_type = 'Lock'" }

    /// `Session.isBlocked`: waiting on a heavyweight lock that someone holds or queues ahead of.
    /// Any backend type counts; count `DISTINCT coalesce(leader_pid, pid)` so a parallel worker
    /// counts as its leader (`SessionAssembly.foldParallelWorkers`).
    /// `pg_blocking_pids()` only for lock waiters: it takes the lock manager's partition locks,
    /// so calling it for every row would stall the server.
    static func isBlocked(_ a: String) -> String {
        "(\(waitsOnLock(a)) AND cardinality(pg_blocking_pids(\(a).pid)) > 0)"
    }

    /// `Session.isIdleInTransaction`.
    static func isIdleInTransaction(_ a: String) -> String {
        "\(a).state IN ('idle in transaction', 'idle in transaction (aborted)')"
    }
}
