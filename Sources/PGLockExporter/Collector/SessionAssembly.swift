/// Joins what the statements of a collection read into the sessions of one snapshot, so that
/// every consumer (metrics, `check`, `remediate`, the graph) sees one model of "blocked":
///
/// - each lock waiter gets its wait time and the relation it queues on (`pg_locks`);
/// - a waiting startup process (hot standby) gets as blockers the backends holding the relation
///   it waits for, which `pg_blocking_pids()` cannot report for it;
/// - a prepared transaction that holds a lock someone waits for becomes a row of its own, with
///   its `gid`, database, owner and age, in place of the anonymous pid 0;
/// - a parallel worker is folded into its leader (`leader_pid`): its wait becomes the leader's,
///   and the worker is never a session of its own.
enum SessionAssembly {
    /// Edits `sessions` in place: a scrape's rows are copied nowhere on the way to the graph.
    static func assemble(_ sessions: inout [Session], locks: LocksStatement.Rows, prepared: [PreparedTransaction]) {
        for index in sessions.indices where sessions[index].waitingOnLock {
            let wait = locks.waits[sessions[index].pid]
            sessions[index].lockWaitSeconds = wait?.seconds
            sessions[index].waitRelation = wait?.relation
            sessions[index].waitMode = wait?.mode
            sessions[index].waitLocktype = wait?.locktype
            // A background process without a database (the startup process) counts in the
            // database of the relation it waits for.
            if sessions[index].datname == nil { sessions[index].datname = wait?.datname }
            if sessions[index].blockedBy.isEmpty, let holders = locks.startupHolders[sessions[index].pid] {
                sessions[index].blockedBy = holders
            }
        }

        // Prepared transactions in the way of some waiter get rows; pid 0 is replaced by them
        // where the holder could be named (it stays 0 when it could not, e.g. a race).
        let wanted = Set(locks.preparedHolders.values.joined())
        var pidByGID: [String: Int32] = [:]
        for (index, transaction) in prepared.enumerated() where wanted.contains(transaction.gid) {
            let row = Session(standingFor: transaction, index: index)
            pidByGID[transaction.gid] = row.pid
            sessions.append(row)
        }
        for index in sessions.indices where sessions[index].blockedBy.contains(0) {
            let named = (locks.preparedHolders[sessions[index].pid] ?? []).compactMap { pidByGID[$0] }
            guard !named.isEmpty else { continue }
            sessions[index].blockedBy = sessions[index].blockedBy.filter { $0 != 0 } + named
        }
        if sessions.contains(where: { $0.isParallelWorker }) { sessions = foldParallelWorkers(sessions) }
    }

    /// A worker's wait becomes its leader's (blockers merged, longest wait kept); workers go.
    static func foldParallelWorkers(_ sessions: [Session]) -> [Session] {
        var leaderOf: [Int32: Int32] = [:]
        for s in sessions where s.isParallelWorker { leaderOf[s.pid] = s.leaderPID! }
        var folded = sessions.filter { !$0.isParallelWorker }
        var indexByPID: [Int32: Int] = [:]
        for (index, s) in folded.enumerated() { indexByPID[s.pid] = index }
        // The blockers each leader has so far, as a set: a leader with many workers each
        // blocked by many sessions costs the sum of their edges, not its square.
        var known: [Int: Set<Int32>] = [:]
        for worker in sessions where worker.isParallelWorker && worker.isBlocked {
            guard let index = indexByPID[worker.leaderPID!] else { continue }
            var blockers = known[index] ?? Set(folded[index].blockedBy)
            for blocker in worker.blockedBy where blocker != folded[index].pid && blockers.insert(blocker).inserted {
                folded[index].blockedBy.append(blocker)
            }
            known[index] = blockers
            folded[index].waitingOnLock = true
            folded[index].lockWaitSeconds = max(folded[index].lockWaitSeconds ?? 0, worker.lockWaitSeconds ?? 0)
            folded[index].waitRelation = folded[index].waitRelation ?? worker.waitRelation
            folded[index].waitMode = folded[index].waitMode ?? worker.waitMode
            folded[index].waitLocktype = folded[index].waitLocktype ?? worker.waitLocktype
        }
        // pg_blocking_pids() already names leaders, not workers; map any worker pid regardless.
        for index in folded.indices where folded[index].blockedBy.contains(where: { leaderOf[$0] != nil }) {
            var seen = Set<Int32>()
            folded[index].blockedBy = folded[index].blockedBy.map { leaderOf[$0] ?? $0 }
                .filter { $0 != folded[index].pid && seen.insert($0).inserted }
        }
        return folded
    }
}
