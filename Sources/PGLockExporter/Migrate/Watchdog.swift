/// What the guard makes of each look at the server while the migration runs. Pure: it gets a
/// snapshot, the pids of the migration's sessions and the time, and returns what to report and
/// what to do; `MigrationGuard` carries it out.
///
/// "Blocked" is the blocking graph's definition (a lock wait with a non-empty
/// `pg_blocking_pids()`), the trees are `check`'s, and the terminations are the remediation
/// policy's decisions, kept to the root blockers the migration waits behind.
struct Watchdog {
    /// A wait longer than this did not get its `lock_timeout`: it is cancelled.
    let maxLockWaitSeconds: Double
    /// Root blockers idle in transaction this long are terminated (`--terminate-idle-after`).
    let terminateIdleAfterSeconds: Double?
    /// Exclusions and caps, as for `remediate`.
    let policy: RemediationPolicy
    /// The guard's own session.
    let ownPID: Int32

    /// One look's result.
    struct Plan {
        var events: [MigrationEvent] = []
        /// Sessions of the migration whose lock wait is to be cancelled.
        var cancel: [(session: Session, waitSeconds: Double)] = []
        /// Root blockers to terminate, as `remediate` decided them.
        var terminate: [Decision] = []
        /// Look again this soon (seconds) rather than after the poll interval: a wait crosses
        /// `maxLockWaitSeconds` then, and is cancelled on time.
        var lookAgainAfter: Double?
    }

    /// Every migration session seen during the run.
    private(set) var watched: Set<Int32> = []
    /// Lock waits summed over the run, each wait counted once at its longest.
    private(set) var totalLockWaitSeconds = 0.0
    /// Root blockers seen, by pid, in the order first seen.
    private(set) var blockers: [MigrationEvent.Blocker] = []
    /// Terminations carried out during the run, against `policy.maxTerminations`.
    private(set) var terminations = 0
    /// The watchdog cancelled a lock wait during this attempt.
    private(set) var cancelledThisAttempt = false

    private var attempt = 0
    private struct Wait {
        var backendStart: String?
        var longest: Double
        var cancelled: Bool
        var reportedRoots: Set<Int32>
    }
    private var waits: [Int32: Wait] = [:]
    private var reportedSkips: Set<String> = []

    init(maxLockWaitSeconds: Double, terminateIdleAfterSeconds: Double?, policy: RemediationPolicy, ownPID: Int32) {
        self.maxLockWaitSeconds = maxLockWaitSeconds
        self.terminateIdleAfterSeconds = terminateIdleAfterSeconds
        self.policy = policy
        self.ownPID = ownPID
    }

    mutating func startAttempt(_ number: Int) {
        endAttempt()
        attempt = number
        cancelledThisAttempt = false
    }

    /// Closes the waits still open (their longest look counts).
    mutating func endAttempt() {
        for pid in Array(waits.keys) { closeWait(pid) }
    }

    mutating func noteCancelled() { cancelledThisAttempt = true }

    /// A look that found none of the migration's sessions.
    mutating func noteNoSessions() {
        endAttempt()
    }

    mutating func noteTerminated(_ pid: Int32) {
        terminations += 1
        if let index = blockers.firstIndex(where: { $0.pid == pid }) { blockers[index].terminated = true }
    }

    mutating func observe(_ snapshot: ActivitySnapshot, migration: Set<Int32>) -> Plan {
        var plan = Plan()
        watched.formUnion(migration)
        var byPID: [Int32: Session] = [:]
        for s in snapshot.sessions { byPID[s.pid] = s }
        let graph = BlockingGraph(sessions: snapshot.sessions)
        var report: BlockingReport?
        var rootsWaitedBehind: Set<Int32> = []

        for pid in migration.sorted() {
            guard let session = byPID[pid], session.isBlocked else {
                closeWait(pid)
                continue
            }
            let waited = session.lockWaitSeconds ?? 0
            if let known = waits[pid], known.backendStart == session.backendStart, waited + 0.05 >= known.longest {
                waits[pid]!.longest = max(known.longest, waited)
            } else {
                closeWait(pid)
                waits[pid] = Wait(backendStart: session.backendStart, longest: waited, cancelled: false, reportedRoots: [])
            }
            let roots = graph.roots.filter { graph.allWaiters(of: $0.pid).contains(pid) }
            rootsWaitedBehind.formUnion(roots.map(\.pid))
            let full = report ?? BlockingReport(snapshot: snapshot, graph: graph)
            report = full
            let unreported = roots.filter { !waits[pid]!.reportedRoots.contains($0.pid) }
            if !unreported.isEmpty {
                plan.events += reportWait(pid, session, waited: waited, roots: unreported, full, migration: migration)
            }
            if waited > maxLockWaitSeconds && !waits[pid]!.cancelled {
                waits[pid]!.cancelled = true
                plan.cancel.append((session, waited))
            } else if !waits[pid]!.cancelled {
                let crossing = maxLockWaitSeconds - waited + 0.01
                plan.lookAgainAfter = min(plan.lookAgainAfter ?? crossing, crossing)
            }
        }

        if let after = terminateIdleAfterSeconds, !rootsWaitedBehind.isEmpty {
            var policy = policy
            policy.minIdleSeconds = after
            policy.pid = nil
            policy.allIdleInTransaction = false
            policy.maxTerminations = max(0, self.policy.maxTerminations - terminations)
            let decisions = policy.decide(snapshot: snapshot, graph: graph, ownPID: ownPID)
                .filter { rootsWaitedBehind.contains($0.pid) && !migration.contains($0.pid) }
            plan.terminate = decisions.filter { $0.action == .terminate }
            for decision in decisions where decision.action == .skip && decision.code != .belowMinIdle {
                guard reportedSkips.insert("\(decision.pid) \(decision.code.rawValue)").inserted else { continue }
                var event = MigrationEvent(.skipped, attempt: attempt, message: "attempt \(attempt): not terminating: \(decision.summary)")
                event.pid = decision.pid
                event.decision = decision
                plan.events.append(event)
            }
        }
        return plan
    }

    /// The `lock_wait` event of a wait first seen behind `roots`, and each root's tree.
    private mutating func reportWait(
        _ pid: Int32, _ session: Session, waited: Double, roots: [BlockingGraph.Root], _ full: BlockingReport,
        migration: Set<Int32>
    ) -> [MigrationEvent] {
        var events: [MigrationEvent] = []
        let own = full.blockingTrees.lazy.compactMap { Self.find(pid, in: $0) }.first
        let lock = own?.lockMode.map { " for \($0)" + (own?.relation.map { " on \($0)" } ?? "") } ?? ""
        var wait = MigrationEvent(
            .lockWait, attempt: attempt,
            message: "attempt \(attempt): the migration's session pid \(pid) waits\(lock) behind pid "
                + session.blockedBy.map(String.init).joined(separator: ", pid ") + " (\(MigrationEvent.duration(waited)) so far)")
        wait.pid = pid
        wait.waitSeconds = waited
        wait.blockedBy = session.blockedBy
        wait.lockMode = own?.lockMode
        wait.relation = own?.relation
        events.append(wait)
        for root in roots {
            waits[pid]!.reportedRoots.insert(root.pid)
            noteBlocker(root)
            guard let whole = full.blockingTrees.first(where: { $0.pid == root.pid }) else { continue }
            let (tree, hidden) = Self.focus(whole, on: pid, keepWaiters: Self.waitersShown)
            let own = migration.contains(root.pid) ? " (one of the migration's own sessions: it blocks itself)" : ""
            var event = MigrationEvent(
                .blocker, attempt: attempt,
                message: "attempt \(attempt): root blocker pid \(root.pid)\(own), the tree the migration waits in:\n"
                    + BlockingReportText(full, color: false).renderTree(tree).trimmingSuffix("\n")
                    + (hidden > 0 ? "\n… and \(hidden) more session\(hidden == 1 ? "" : "s") in this tree (check shows them all)" : ""))
            event.pid = pid
            event.tree = tree
            events.append(event)
        }
        return events
    }

    private mutating func closeWait(_ pid: Int32) {
        guard let wait = waits.removeValue(forKey: pid) else { return }
        totalLockWaitSeconds += wait.longest
    }

    private mutating func noteBlocker(_ root: BlockingGraph.Root) {
        let s = root.session
        let blocker = MigrationEvent.Blocker(
            pid: root.pid, state: root.state, stateSeconds: s?.stateSeconds, usename: s?.usename,
            applicationName: s?.applicationName ?? "", clientAddr: s?.clientAddr ?? "", terminated: false)
        if let index = blockers.firstIndex(where: { $0.pid == root.pid }) {
            let terminated = blockers[index].terminated
            blockers[index] = blocker
            blockers[index].terminated = terminated
        } else {
            blockers.append(blocker)
        }
    }

    /// Sessions queued behind the migration's that a tree shows (the rest are counted).
    static let waitersShown = 3

    /// The part of a tree that matters to the migration: the path from the root to `pid`, and
    /// the first `keepWaiters` sessions queued behind it (the application's queries). Returns
    /// the focused tree and how many sessions it leaves out.
    static func focus(_ node: BlockingReport.Node, on pid: Int32, keepWaiters: Int) -> (BlockingReport.Node, hidden: Int) {
        var out = node
        if node.pid == pid && !node.repeated {
            out.blocked = Array(node.blocked.prefix(keepWaiters)).map { var leaf = $0; leaf.blocked = []; return leaf }
            return (out, count(node) - count(out))
        }
        var hidden = 0
        out.blocked = []
        for child in node.blocked {
            if find(pid, in: child) != nil {
                let (focused, more) = focus(child, on: pid, keepWaiters: keepWaiters)
                out.blocked.append(focused)
                hidden += more
            } else {
                hidden += 1 + count(child)
            }
        }
        return (out, hidden)
    }

    /// Sessions below `node`.
    private static func count(_ node: BlockingReport.Node) -> Int {
        node.blocked.reduce(0) { $0 + 1 + count($1) }
    }

    private static func find(_ pid: Int32, in node: BlockingReport.Node) -> BlockingReport.Node? {
        if node.pid == pid && !node.repeated { return node }
        for child in node.blocked { if let found = find(pid, in: child) { return found } }
        return nil
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var out = self
        while out.hasSuffix(suffix) { out.removeLast(suffix.count) }
        return out
    }
}
