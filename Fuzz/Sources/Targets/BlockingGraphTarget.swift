import PGLockExporter

/// The blocking graph from any `pg_blocking_pids()` answer: cycles, self-edges, duplicates,
/// pids with no row and pid 0, up to thousands of waiters. The input is read as pairs of bytes
/// (waiter, blocker) over a small pid space, so cycles and diamonds are common.
///
/// Invariants: a root waits on nobody and blocks someone; its waiter count is the number of
/// sessions behind it; no root sits on a cycle; the depth never exceeds the number of blocked
/// sessions; and libFuzzer's 10 s limit per input catches any blow-up (the graph is linear).
enum BlockingGraphTarget {
    static let target = FuzzTarget(name: "blocking-graph") { bytes in
        var blockers: [Int32: [Int32]] = [:]
        var pairs = bytes[...]
        while pairs.count >= 2 {
            let waiter = Int32(pairs.removeFirst() % 64), blocker = Int32(pairs.removeFirst() % 72)
            blockers[waiter, default: []].append(blocker)
        }
        let waits = blockers.sorted { $0.key < $1.key }.map { (pid: $0.key, blockedBy: $0.value) }
        let graph = BlockingGraph(waits: waits)
        let cycleMembers = Set(graph.cycles.joined())
        for root in graph.roots {
            FuzzCheck.require(!graph.blocked.contains(root.pid), "root \(root.pid) is blocked")
            FuzzCheck.require(graph.isBlocking(root.pid), "root \(root.pid) blocks nobody")
            FuzzCheck.require(!cycleMembers.contains(root.pid), "root \(root.pid) is on a cycle")
            FuzzCheck.require(root.blockedCount == graph.allWaiters(of: root.pid).count, "root \(root.pid)'s waiter count")
            FuzzCheck.require(root.depth >= 1 && root.depth <= graph.blocked.count, "root \(root.pid)'s depth \(root.depth)")
        }
    }
}
