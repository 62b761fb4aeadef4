/// Who blocks whom, computed from the lock waiters' `pg_blocking_pids()`.
///
/// Edges run from a blocker to each session waiting on it (parallel edges and a session's edge to
/// itself are dropped). A **root blocker** blocks someone and waits on nobody; a session may sit
/// behind several roots (it is counted under each). The metrics, `check` and `remediate` all read
/// it from here.
///
/// **Cycles.** Sessions can wait on one another in a cycle: a deadlock the server has not broken
/// yet (it waits `deadlock_timeout` before it looks), or rows read at slightly different moments.
/// The graph is condensed into its strongly connected components (Tarjan), and everything is
/// defined on that condensed graph, which has no cycles:
/// - A cycle's members wait, so none of them is a root. A cycle behind a root counts under that
///   root like any waiter. A cycle that nobody outside holds up (a pure deadlock) has no root:
///   its members and the sessions queued behind it are blocked sessions (`pg_blocked_sessions`,
///   `check`'s sessions with their `blocked_by`) under no tree; `cycles` names its members (and
///   `check` shows them).
///   PostgreSQL ends one of them after `deadlock_timeout` (`pg_database_deadlocks_total`).
/// - A chain's **depth** is the number of edges on the longest path from the root, where a
///   cycle of k members counts as a queue of its members: k − 1 edges, whichever member the path
///   enters or leaves it by (its members all wait on one another). Without cycles (the usual
///   case) this is the longest path, exactly: idle-in-transaction root → queued `ALTER TABLE` →
///   reader is 2. With one, it is at least the longest path that visits no session twice.
/// - A root's **waiters** are every session it reaches, each counted once, cycle members
///   included; `allWaiters(of:)` of a cycle member holds the other members and those behind them.
///
/// **Cost.** Building the graph is linear in sessions plus edges (as `pg_blocking_pids()` lists
/// them, duplicates included), apart from sorting the pids once and each cycle's members: Tarjan's algorithm (iterative, so 10,000 sessions in a chain need no deep stack), the
/// depths by one pass in topological order, and the waiter counts. Those are reachable-set sizes,
/// which no known algorithm counts in linear time for any number of roots: they propagate as bit
/// sets, 64 roots at a time, and add up in bit-sliced counters, one linear pass over the
/// condensed graph per 64 roots: (V + E) · ⌈R / 64⌉ steps. With up to 64 roots, which is every
/// blocking incident we have seen (a queue has one root, a table many readers share a few), that
/// is linear; 6,400 roots sharing one large queue would cost 100 passes. `steps` counts them.
public struct BlockingGraph: Sendable {
    /// A root blocker and what waits behind it.
    public struct Root: Sendable, Equatable {
        public var pid: Int32
        /// nil when the pid has no row: 0 (a prepared transaction that could not be named) or a
        /// backend that just ended.
        public var session: Session?
        /// Sessions waiting behind this root, directly or transitively.
        public var blockedCount: Int
        /// Longest path from the root to a waiter, in edges (a cycle counts as its members' queue).
        public var depth: Int
        /// The root's database, or its first waiter's when the root has no row.
        public var datname: String
        /// `idle in transaction`, `active`, ..., a background process's type, `prepared
        /// transaction`, else `unknown`.
        public var state: String

        public var isPreparedTransaction: Bool { session?.isPreparedTransaction ?? (pid == 0) }

        /// The pid as PostgreSQL shows it: 0 for a prepared transaction.
        public var displayPID: Int32 { isPreparedTransaction ? 0 : pid }

        /// What the root stands for; only a `.clientBackend` can ever be signalled.
        public var identity: SessionIdentity {
            session?.identity ?? (pid == 0 ? .unnamedPreparedTransaction : .unknown(pid: pid))
        }
    }

    /// The blocked sessions (lock waiters with a non-empty `pg_blocking_pids()`): rows of the
    /// snapshot, looked up by pid, never copied out of it.
    public struct BlockedSessions: Sendable {
        private let all: [Session]
        /// Rows of `all` that are blocked, ascending.
        private let rows: [Int]
        private let rowByPID: [Int32: Int]

        init(all: [Session], rows: [Int], rowByPID: [Int32: Int]) {
            self.all = all
            self.rows = rows
            self.rowByPID = rowByPID
        }

        public subscript(pid: Int32) -> Session? { rowByPID[pid].map { all[$0] } }
        public func contains(_ pid: Int32) -> Bool { rowByPID[pid] != nil }
        public var count: Int { rows.count }
        public var isEmpty: Bool { rows.isEmpty }
        /// In the snapshot's order.
        public var sessions: LazyMapSequence<[Int], Session> { rows.lazy.map { all[$0] } }
        public var pids: [Int32] { rows.map { all[$0].pid } }
    }

    public let blocked: BlockedSessions
    /// Root blockers, most waiters first, then longest in state, then lowest pid.
    public let roots: [Root]
    /// Sessions waiting on one another in a cycle (strongly connected components of two or more
    /// members), each in ascending pid order, ordered by their lowest pid.
    public let cycles: [[Int32]]
    /// blocker pid → pids waiting on it directly, ascending.
    private let waitersByBlocker: [Int32: [Int32]]
    /// waiter pid → the pids it waits on directly (deduplicated, never itself).
    private let blockersByWaiter: [Int32: [Int32]]
    /// Basic steps taken to build the graph (node and edge visits, bit-set words, counted
    /// pairs): the cost bound the tests check.
    let steps: Int
    /// Sessions in the graph (blocked or blocking) and edges between them, for the same bound.
    let nodeCount: Int
    let edgeCount: Int

    /// A graph from bare waits: each `pid` waits on a lock held or queued by `blockedBy`. Pure,
    /// total (any pids, duplicates, self-edges, cycles): the entry point for fuzzing the graph.
    public init(waits: [(pid: Int32, blockedBy: [Int32])]) {
        self.init(sessions: waits.map { wait in
            Session(
                pid: wait.pid, datname: nil, usename: nil, applicationName: "", clientAddr: "", backendType: "client backend",
                state: "active", stateSeconds: nil, transactionSeconds: nil, waitingOnLock: true, blockedBy: wait.blockedBy,
                lockWaitSeconds: nil, backendStart: nil, stateChange: nil, query: nil)
        })
    }

    public init(sessions: [Session]) {
        var steps = 0
        // Rows by index, not copies: a Session is some 250 bytes with several strings, and
        // copying hundreds of them per scrape cost more than the graph itself.
        var blockedRows: [Int] = []
        var rowByPID: [Int32: Int] = [:]
        var blockersByWaiter: [Int32: [Int32]] = [:]
        // Parallel edges go: `lastWaiter[b] == pid` when the edge b → pid is already in. Two rows
        // with one pid (never from PostgreSQL) fall back to searching the list.
        var lastWaiter: [Int32: Int32] = [:]
        for index in sessions.indices where sessions[index].isBlocked {
            let pid = sessions[index].pid
            steps += 1
            blockedRows.append(index)
            let repeatedRow = rowByPID[pid] != nil
            if !repeatedRow { rowByPID[pid] = index }
            var blockers = blockersByWaiter[pid] ?? []
            for blocker in sessions[index].blockedBy {
                steps += 1
                guard blocker != pid && lastWaiter[blocker] != pid else { continue }
                if repeatedRow && blockers.contains(blocker) { continue }
                lastWaiter[blocker] = pid
                blockers.append(blocker)
            }
            blockersByWaiter[pid] = blockers
        }
        let blocked = BlockedSessions(all: sessions, rows: blockedRows, rowByPID: rowByPID)
        self.blocked = blocked
        self.blockersByWaiter = blockersByWaiter

        // Nodes in ascending pid order, so that every adjacency list comes out ascending.
        var pidSet = Set(blockersByWaiter.keys)
        for blockers in blockersByWaiter.values { pidSet.formUnion(blockers) }
        let pids = pidSet.sorted()
        var nodeOf: [Int32: Int] = [:]
        nodeOf.reserveCapacity(pids.count)
        for (node, pid) in pids.enumerated() { nodeOf[pid] = node }
        var waiters = [[Int]](repeating: [], count: pids.count)
        for (node, pid) in pids.enumerated() {
            for blocker in blockersByWaiter[pid] ?? [] {
                steps += 1
                waiters[nodeOf[blocker]!].append(node)
            }
        }
        var waitersByBlocker: [Int32: [Int32]] = [:]
        for node in pids.indices where !waiters[node].isEmpty {
            waitersByBlocker[pids[node]] = waiters[node].map { pids[$0] }
        }
        self.waitersByBlocker = waitersByBlocker

        let condensed = GraphCondensation(waiters, steps: &steps)
        self.cycles = condensed.members.filter { $0.count > 1 }.map { $0.map { pids[$0] }.sorted() }.sorted { $0[0] < $1[0] }
        let depth = condensed.depths(waiters, steps: &steps)

        // The roots: blockers that wait on nobody (a singleton component nothing enters).
        let rootNodes = pids.indices.filter { !waiters[$0].isEmpty && blockersByWaiter[pids[$0]] == nil }
        let counts = condensed.reachCounts(from: rootNodes, waiters, steps: &steps)

        var rootRow: [Int32: Int] = [:]
        for node in rootNodes { rootRow[pids[node]] = -1 }
        for index in sessions.indices where rootRow[sessions[index].pid] == -1 { rootRow[sessions[index].pid] = index }
        var roots: [Root] = []
        roots.reserveCapacity(rootNodes.count)
        for (k, node) in rootNodes.enumerated() {
            let pid = pids[node]
            let session = rootRow[pid].flatMap { $0 < 0 ? nil : sessions[$0] }
            let direct = waitersByBlocker[pid]!
            let datname = session?.datname ?? direct.lazy.compactMap { blocked[$0]?.datname }.first ?? ""
            let state = session?.stateLabel ?? (pid == 0 ? Session.preparedTransaction : "unknown")
            roots.append(Root(pid: pid, session: session, blockedCount: counts[k], depth: depth[node], datname: datname, state: state))
        }
        self.roots = roots.sorted {
            if $0.blockedCount != $1.blockedCount { return $0.blockedCount > $1.blockedCount }
            let a = $0.session?.stateSeconds ?? 0, b = $1.session?.stateSeconds ?? 0
            if a != b { return a > b }
            return $0.pid < $1.pid
        }
        self.steps = steps
        self.nodeCount = pids.count
        self.edgeCount = blockersByWaiter.values.reduce(0) { $0 + $1.count }
    }

    /// Pids waiting on `pid` directly, ascending.
    public func directWaiters(of pid: Int32) -> [Int32] { waitersByBlocker[pid] ?? [] }

    /// Pids waiting behind `pid`, directly or transitively (never `pid` itself).
    public func allWaiters(of pid: Int32) -> Set<Int32> { Self.reachable(from: [pid], waitersByBlocker) }

    /// True when `pid` blocks at least one session.
    public func isBlocking(_ pid: Int32) -> Bool { waitersByBlocker[pid] != nil }

    /// The roots that any of `pids` waits behind, directly or transitively: one walk up the
    /// edges, linear in the graph, however many roots there are.
    public func roots(blocking pids: some Sequence<Int32>) -> [Root] {
        let above = Self.reachable(from: Array(pids), blockersByWaiter)
        return roots.filter { above.contains($0.pid) }
    }

    /// Every pid reachable from `starts` along `edges`, the starts themselves only when a cycle
    /// leads back to them.
    private static func reachable(from starts: [Int32], _ edges: [Int32: [Int32]]) -> Set<Int32> {
        var seen = Set<Int32>()
        var stack = starts
        while let next = stack.popLast() {
            for neighbour in edges[next] ?? [] where seen.insert(neighbour).inserted {
                stack.append(neighbour)
            }
        }
        if starts.count == 1 { seen.remove(starts[0]) }
        return seen
    }
}
