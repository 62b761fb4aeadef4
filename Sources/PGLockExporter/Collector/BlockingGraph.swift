/// Who blocks whom, computed from the lock waiters' `pg_blocking_pids()`.
///
/// Edges run from a waiter to each pid that blocks it. A root blocker blocks someone and waits
/// on nobody; a session may sit behind several roots (it is counted under each). A chain's depth
/// is the number of edges on the longest path from its root to a waiter: idle-in-transaction
/// root → queued `ALTER TABLE` → reader is 2. The metrics and `check` both read it from here.
///
/// Cycles (a deadlock the server has not broken yet, or rows read at slightly different moments)
/// are tolerated: the longest path is searched depth-first from each root on its own, waiters in
/// ascending pid order, never following an edge back onto the current path. The result depends
/// only on the graph, so the same input gives the same depth on every run.
public struct BlockingGraph: Sendable {
    /// A root blocker and what waits behind it.
    public struct Root: Sendable, Equatable {
        public var pid: Int32
        /// nil when the pid has no row: 0 (a prepared transaction that could not be named) or a
        /// backend that just ended.
        public var session: Session?
        /// Sessions waiting behind this root, directly or transitively.
        public var blockedCount: Int
        /// Longest path from the root to a waiter, in edges.
        public var depth: Int
        /// The root's database, or its first waiter's when the root has no row.
        public var datname: String
        /// `idle in transaction`, `active`, ..., a background process's type, `prepared
        /// transaction`, else `unknown`.
        public var state: String

        public var isPreparedTransaction: Bool { session?.isPreparedTransaction ?? (pid == 0) }

        /// The pid as PostgreSQL shows it: 0 for a prepared transaction.
        public var displayPID: Int32 { isPreparedTransaction ? 0 : pid }
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
    /// blocker pid → pids waiting on it directly, ascending.
    private let waitersByBlocker: [Int32: [Int32]]

    public init(sessions: [Session]) {
        // Rows by index, not copies: a Session is some 250 bytes with several strings, and
        // copying hundreds of them per scrape cost more than the graph itself.
        var blockedRows: [Int] = []
        var rowByPID: [Int32: Int] = [:]
        var waitersByBlocker: [Int32: [Int32]] = [:]
        for index in sessions.indices where sessions[index].isBlocked {
            let pid = sessions[index].pid
            blockedRows.append(index)
            rowByPID[pid] = index
            for blocker in sessions[index].blockedBy where blocker != pid {
                waitersByBlocker[blocker, default: []].append(pid)
            }
        }
        for key in waitersByBlocker.keys { waitersByBlocker[key]!.sort() }
        let blocked = BlockedSessions(all: sessions, rows: blockedRows, rowByPID: rowByPID)
        self.blocked = blocked
        self.waitersByBlocker = waitersByBlocker

        // The rows of the roots: blockers that wait on nobody.
        var rootRow: [Int32: Int] = [:]
        for index in sessions.indices {
            let pid = sessions[index].pid
            if waitersByBlocker[pid] != nil && rowByPID[pid] == nil { rootRow[pid] = index }
        }
        func session(_ pid: Int32) -> Session? { rootRow[pid].map { sessions[$0] } }

        var roots: [Root] = []
        for pid in waitersByBlocker.keys.sorted() where !blocked.contains(pid) {
            let direct = waitersByBlocker[pid]!
            let session = session(pid)
            let datname = session?.datname ?? direct.lazy.compactMap { blocked[$0]?.datname }.first ?? ""
            let state = session?.stateLabel ?? (pid == 0 ? Session.preparedTransaction : "unknown")
            var onPath = Set<Int32>()
            roots.append(
                Root(
                    pid: pid, session: session,
                    blockedCount: Self.reachable(from: pid, waitersByBlocker).count,
                    depth: Self.depth(of: pid, waitersByBlocker, &onPath),
                    datname: datname, state: state))
        }
        self.roots = roots.sorted {
            if $0.blockedCount != $1.blockedCount { return $0.blockedCount > $1.blockedCount }
            let a = $0.session?.stateSeconds ?? 0, b = $1.session?.stateSeconds ?? 0
            if a != b { return a > b }
            return $0.pid < $1.pid
        }
    }

    /// Pids waiting on `pid` directly, ascending.
    public func directWaiters(of pid: Int32) -> [Int32] { waitersByBlocker[pid] ?? [] }

    /// Pids waiting behind `pid`, directly or transitively (never `pid` itself).
    public func allWaiters(of pid: Int32) -> Set<Int32> { Self.reachable(from: pid, waitersByBlocker) }

    /// True when `pid` blocks at least one session.
    public func isBlocking(_ pid: Int32) -> Bool { waitersByBlocker[pid] != nil }

    private static func reachable(from start: Int32, _ edges: [Int32: [Int32]]) -> Set<Int32> {
        var seen: Set<Int32> = [start]
        var stack = [start]
        while let next = stack.popLast() {
            for waiter in edges[next] ?? [] where seen.insert(waiter).inserted {
                stack.append(waiter)
            }
        }
        seen.remove(start)
        return seen
    }

    /// Longest simple path below `pid`, in edges. An edge back onto the current path (a cycle) is
    /// not followed. Without cycles (the usual case) each node is explored once per root through a
    /// memo; a memo entry is only kept for nodes whose subtree met no cycle, as only those have a
    /// depth that does not depend on the path taken to them.
    static func depth(of pid: Int32, _ edges: [Int32: [Int32]], _ onPath: inout Set<Int32>) -> Int {
        var memo: [Int32: Int] = [:]
        return depth(of: pid, edges, &onPath, &memo).depth
    }

    private static func depth(
        of pid: Int32, _ edges: [Int32: [Int32]], _ onPath: inout Set<Int32>, _ memo: inout [Int32: Int]
    ) -> (depth: Int, sawCycle: Bool) {
        if let known = memo[pid] { return (known, false) }
        onPath.insert(pid)
        var best = 0
        var sawCycle = false
        for waiter in edges[pid] ?? [] {
            if onPath.contains(waiter) {
                sawCycle = true
                continue
            }
            let below = depth(of: waiter, edges, &onPath, &memo)
            best = max(best, 1 + below.depth)
            sawCycle = sawCycle || below.sawCycle
        }
        onPath.remove(pid)
        if !sawCycle { memo[pid] = best }
        return (best, sawCycle)
    }
}
