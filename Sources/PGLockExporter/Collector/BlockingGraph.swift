/// Who blocks whom, computed from the lock waiters' `pg_blocking_pids()`.
///
/// Edges run from a waiter to each pid that blocks it. A root blocker blocks someone and waits
/// on nobody; a session may sit behind several roots (it is counted under each). A chain's depth
/// is the number of edges on the longest path from its root to a waiter: idle-in-transaction
/// root → queued `ALTER TABLE` → reader is 2. Cycles (a deadlock the server has not broken yet, or
/// rows read at slightly different moments) are tolerated: every walk keeps a visited set.
public struct BlockingGraph: Sendable {
    /// A root blocker and what waits behind it.
    public struct Root: Sendable, Equatable {
        public var pid: Int32
        /// nil when the pid has no row: 0 (a prepared transaction) or a backend that just ended.
        public var session: Session?
        /// Sessions waiting behind this root, directly or transitively.
        public var blockedCount: Int
        /// Longest path from the root to a waiter, in edges.
        public var depth: Int
        /// The root's database, or its first waiter's when the root has no row.
        public var datname: String
        /// `idle in transaction`, `active`, ..., `prepared transaction` for pid 0, else `unknown`.
        public var state: String

        public var isPreparedTransaction: Bool { pid == 0 }
    }

    /// Blocked sessions (lock waiters with a non-empty `pg_blocking_pids()`), by pid.
    public let blocked: [Int32: Session]
    /// Root blockers, most waiters first, then longest in state, then lowest pid.
    public let roots: [Root]
    /// blocker pid → pids waiting on it directly, ascending.
    private let waitersByBlocker: [Int32: [Int32]]

    public init(sessions: [Session]) {
        // pid → index, not copies: a Session holds several strings, and copying hundreds of them
        // per scrape costs more than the graph itself.
        var indexByPID: [Int32: Int] = [:]
        indexByPID.reserveCapacity(sessions.count)
        for (index, session) in sessions.enumerated() { indexByPID[session.pid] = index }
        func session(_ pid: Int32) -> Session? { indexByPID[pid].map { sessions[$0] } }

        var blocked: [Int32: Session] = [:]
        var waitersByBlocker: [Int32: [Int32]] = [:]
        for session in sessions where session.isBlocked {
            blocked[session.pid] = session
            for blocker in session.blockedBy where blocker != session.pid {
                waitersByBlocker[blocker, default: []].append(session.pid)
            }
        }
        for key in waitersByBlocker.keys { waitersByBlocker[key]!.sort() }
        self.blocked = blocked
        self.waitersByBlocker = waitersByBlocker

        var depthMemo: [Int32: Int] = [:]
        var roots: [Root] = []
        for (pid, direct) in waitersByBlocker where blocked[pid] == nil {
            let session = session(pid)
            let datname = session?.datname ?? direct.lazy.compactMap { indexByPID[$0].flatMap { sessions[$0].datname } }.first ?? ""
            let state = pid == 0 ? "prepared transaction" : (session?.stateLabel ?? "unknown")
            var onPath = Set<Int32>()
            roots.append(
                Root(
                    pid: pid, session: session,
                    blockedCount: Self.reachable(from: pid, waitersByBlocker).count,
                    depth: Self.depth(of: pid, waitersByBlocker, &depthMemo, &onPath),
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

    /// Longest path below `pid`. An edge back onto the current path (a cycle) is not followed.
    private static func depth(
        of pid: Int32, _ edges: [Int32: [Int32]], _ memo: inout [Int32: Int], _ onPath: inout Set<Int32>
    ) -> Int {
        if let known = memo[pid] { return known }
        onPath.insert(pid)
        var best = 0
        for waiter in edges[pid] ?? [] where !onPath.contains(waiter) {
            best = max(best, 1 + depth(of: waiter, edges, &memo, &onPath))
        }
        onPath.remove(pid)
        memo[pid] = best
        return best
    }
}
