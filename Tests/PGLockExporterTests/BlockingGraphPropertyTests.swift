import PropertyBased
import Testing

@testable import PGLockExporter

/// Brute-force answers about a set of sessions, written for clarity and nothing else: every
/// question is answered from the definitions (BFS, mutual reachability, exhaustive path search),
/// never with the graph's own algorithms. Small graphs only: the path searches are exponential.
struct GraphOracle {
    /// Blocked sessions' pids, in the sessions' order.
    var waiters: [Int32] = []
    /// blocker → waiters.
    var out: [Int32: Set<Int32>] = [:]
    var nodes: Set<Int32> = []

    init(sessions: [Session]) {
        for s in sessions where s.waitingOnLock && !s.blockedBy.isEmpty {
            waiters.append(s.pid)
            nodes.insert(s.pid)
            for b in s.blockedBy where b != s.pid {
                out[b, default: []].insert(s.pid)
                nodes.insert(b)
            }
        }
    }

    var edgeCount: Int { out.values.reduce(0) { $0 + $1.count } }

    /// Nodes reachable from `x` in one or more steps (`x` itself only on a cycle).
    func reach(_ x: Int32) -> Set<Int32> {
        var seen = Set<Int32>()
        var queue = Array(out[x] ?? [])
        while let next = queue.popLast() {
            guard seen.insert(next).inserted else { continue }
            queue += out[next] ?? []
        }
        return seen
    }

    /// Blockers that wait on nobody, by definition.
    var roots: Set<Int32> { Set(nodes.filter { !(out[$0] ?? []).isEmpty && !waiters.contains($0) }) }

    /// The nodes that reach `x` and that `x` reaches, and `x`.
    func component(_ x: Int32) -> Set<Int32> {
        let forward = reach(x)
        return Set([x] + forward.filter { reach($0).contains(x) })
    }

    /// Components of two or more members, each ascending, by lowest pid.
    var cycles: [[Int32]] {
        Set(nodes.map { component($0) }).filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
    }

    /// The documented depth: the longest path over components, a component of k members counting
    /// k − 1 edges. Every path of the condensed graph is tried.
    func depth(_ x: Int32) -> Int {
        func longest(_ comp: Set<Int32>) -> Int {
            let next = Set(comp.flatMap { out[$0] ?? [] }.filter { !comp.contains($0) }.map { component($0) })
            return comp.count - 1 + (next.map { 1 + longest($0) }.max() ?? 0)
        }
        return longest(component(x))
    }

    /// The longest path from `x` that visits no node twice, by exhaustive search.
    func longestSimplePath(_ x: Int32) -> Int {
        var onPath: Set<Int32> = [x]
        func walk(_ v: Int32) -> Int {
            var best = 0
            for w in out[v] ?? [] where !onPath.contains(w) {
                onPath.insert(w)
                best = max(best, 1 + walk(w))
                onPath.remove(w)
            }
            return best
        }
        return walk(x)
    }
}

/// Random sessions from small integers, so the generator can shrink a failing graph to a small
/// one. Session i has pid i + 1; a blocker index j names session j, or, past the last session, a
/// pid with no row: 0 (an unnamed prepared transaction) for j = 9, else 100 + j (a backend that
/// just ended). Kinds: 0–2 a client waiting on its blockers (duplicates, self-edges and cycles
/// come as they fall), 3 idle in transaction, 4 waiting with no blocker reported, 5 an autovacuum
/// worker waiting on its blockers.
enum RandomSessions {
    static func pid(_ j: Int, count: Int) -> Int32 { j < count ? Int32(j + 1) : (j == 9 ? 0 : Int32(100 + j)) }

    static func make(_ blockers: [[Int]], kinds: [Int]) -> [Session] {
        blockers.enumerated().map { i, js in
            let kind = kinds.isEmpty ? 0 : kinds[i % kinds.count]
            let waits = kind <= 2 || kind == 5
            return Session.fixture(
                pid: Int32(i + 1), backendType: kind == 5 ? "autovacuum worker" : "client backend",
                state: kind == 3 ? "idle in transaction" : "active", stateSeconds: Double((i * 7) % 4),
                waitingOnLock: waits || kind == 4, blockedBy: waits ? js.map { pid($0, count: blockers.count) } : [])
        }
    }

    static let blockers = Gen.int(in: 0...9).array(of: 0...4).array(of: 1...9)
    static let kinds = Gen.int(in: 0...5).array(of: 1...9)
}

/// Issue 19, finding 3: the blocking graph against the oracle on random graphs (cycles, diamonds,
/// self-edges, parallel edges, rowless blockers, parallel workers), and its cost in steps.
@Suite struct BlockingGraphPropertyTests {
    /// The bound `BlockingGraph` documents: one linear pass per 64 roots, plus reading out each
    /// root's counter (one step per bit of the largest count).
    static func stepBound(nodes: Int, edges: Int, roots: Int) -> Int {
        let passes = max(1, (roots + 63) / 64)
        return 14 * (nodes + edges) * passes + roots * (Int.bitWidth - nodes.leadingZeroBitCount + 1)
    }

    func expectMatchesOracle(_ sessions: [Session], sourceLocation: SourceLocation = #_sourceLocation) {
        let graph = BlockingGraph(sessions: sessions)
        let oracle = GraphOracle(sessions: sessions)
        #expect(graph.blocked.pids == oracle.waiters, sourceLocation: sourceLocation)
        #expect(Set(graph.roots.map(\.pid)) == oracle.roots, sourceLocation: sourceLocation)
        let stateSeconds = Dictionary(sessions.map { ($0.pid, $0.stateSeconds ?? 0) }, uniquingKeysWith: { a, _ in a })
        let ordered = oracle.roots.sorted {
            let a = oracle.reach($0).count, b = oracle.reach($1).count
            if a != b { return a > b }
            let sa = stateSeconds[$0] ?? 0, sb = stateSeconds[$1] ?? 0
            return sa != sb ? sa > sb : $0 < $1
        }
        #expect(graph.roots.map(\.pid) == ordered, sourceLocation: sourceLocation)
        for root in graph.roots {
            #expect(root.blockedCount == oracle.reach(root.pid).count, "root \(root.pid)", sourceLocation: sourceLocation)
            #expect(root.depth == oracle.depth(root.pid), "root \(root.pid)", sourceLocation: sourceLocation)
            #expect(root.depth >= oracle.longestSimplePath(root.pid), sourceLocation: sourceLocation)
            if oracle.cycles.isEmpty {
                #expect(root.depth == oracle.longestSimplePath(root.pid), "root \(root.pid)", sourceLocation: sourceLocation)
            }
        }
        for node in oracle.nodes {
            #expect(graph.allWaiters(of: node) == oracle.reach(node).subtracting([node]), "node \(node)", sourceLocation: sourceLocation)
            #expect(graph.directWaiters(of: node) == (oracle.out[node] ?? []).sorted(), sourceLocation: sourceLocation)
            #expect(graph.isBlocking(node) == !(oracle.out[node] ?? []).isEmpty, sourceLocation: sourceLocation)
            let above = Set(oracle.roots.filter { oracle.reach($0).contains(node) })
            #expect(Set(graph.roots(blocking: [node]).map(\.pid)) == above, "node \(node)", sourceLocation: sourceLocation)
        }
        #expect(graph.cycles == oracle.cycles, sourceLocation: sourceLocation)
        #expect(graph.nodeCount == oracle.nodes.count, sourceLocation: sourceLocation)
        #expect(graph.edgeCount == oracle.edgeCount, sourceLocation: sourceLocation)
        #expect(
            graph.steps <= Self.stepBound(nodes: graph.nodeCount, edges: graph.edgeCount, roots: graph.roots.count),
            "\(graph.steps) steps", sourceLocation: sourceLocation)
    }

    @Test(.shrinking) func randomGraphsMatchTheOracle() async {
        await propertyCheck(count: 400, input: RandomSessions.blockers, RandomSessions.kinds) { blockers, kinds in
            expectMatchesOracle(RandomSessions.make(blockers, kinds: kinds))
        }
    }

    /// The same sessions in another order: the same roots, counts, depths and cycles.
    @Test func theAnswerDoesNotDependOnTheSessionsOrder() async {
        await propertyCheck(count: 200, input: RandomSessions.blockers, RandomSessions.kinds) { blockers, kinds in
            let sessions = RandomSessions.make(blockers, kinds: kinds)
            let a = BlockingGraph(sessions: sessions), b = BlockingGraph(sessions: sessions.reversed())
            #expect(a.roots == b.roots)
            #expect(a.cycles == b.cycles)
            #expect(Set(a.blocked.pids) == Set(b.blocked.pids))
        }
    }

    /// Parallel workers (pids 201…) of random leaders, waiting on random blockers, some named as
    /// blockers themselves: the graph of the folded sessions is the oracle's on the contracted
    /// sessions (every worker pid replaced by its leader's, a worker's wait made its leader's).
    @Test(.shrinking) func parallelWorkersCountAsTheirLeader() async {
        let workers = zip(Gen.int(in: 0...8), Gen.int(in: 0...11).array(of: 0...3), Gen.bool).array(of: 0...4)
        await propertyCheck(count: 300, input: RandomSessions.blockers, RandomSessions.kinds, workers) { blockers, kinds, workers in
            var leaders = RandomSessions.make(blockers, kinds: kinds)
            // Blocker indices 10 and 11 name the first two workers, for workers and leaders alike
            // (a leader's rowless blockers 107 and 108 become them). Self-edges are left to the
            // test above: pg_blocking_pids() never names the session itself.
            func pid(_ j: Int) -> Int32 { j >= 10 ? Int32(201 + j - 10) : RandomSessions.pid(j, count: leaders.count) }
            for i in leaders.indices where leaders[i].waitingOnLock {
                leaders[i].blockedBy = leaders[i].blockedBy.map { $0 == 107 ? 201 : $0 == 108 ? 202 : $0 }.filter { $0 != leaders[i].pid }
            }
            var sessions = leaders
            var leaderOf: [Int32: Int32] = [:]
            for (w, (leaderIndex, js, waits)) in workers.enumerated() {
                let leader = Int32(leaderIndex % leaders.count + 1)
                leaderOf[Int32(201 + w)] = leader
                var worker = Session.fixture(
                    pid: Int32(201 + w), backendType: "parallel worker", state: "active", waitingOnLock: waits,
                    blockedBy: waits ? js.map(pid) : [])
                worker.leaderPID = leader
                sessions.append(worker)
            }
            // The contraction, from the definitions.
            let contracted: [Session] = leaders.map { leader in
                var s = leader
                let blockedWorkers = sessions.filter { leaderOf[$0.pid] == leader.pid && $0.isBlocked }
                if !blockedWorkers.isEmpty { s.waitingOnLock = true }
                var seen = Set<Int32>()
                s.blockedBy = (leader.blockedBy + blockedWorkers.flatMap(\.blockedBy)).map { leaderOf[$0] ?? $0 }
                    .filter { $0 != leader.pid && seen.insert($0).inserted }
                return s
            }
            let folded = SessionAssembly.foldParallelWorkers(sessions)
            #expect(!folded.contains { leaderOf[$0.pid] != nil || $0.blockedBy.contains { leaderOf[$0] != nil } })
            let graph = BlockingGraph(sessions: folded)
            let oracle = GraphOracle(sessions: contracted)
            #expect(graph.blocked.pids == oracle.waiters)
            #expect(Set(graph.roots.map(\.pid)) == oracle.roots)
            for root in graph.roots {
                #expect(root.blockedCount == oracle.reach(root.pid).count)
                #expect(root.depth == oracle.depth(root.pid))
            }
            #expect(graph.cycles == oracle.cycles)
        }
    }

    /// 10,000 sessions in random shapes with up to 64 roots: a chain, a random graph with
    /// diamonds and back edges, a queue where each waiter waits on every earlier one with a
    /// pending deadlock inside (the shape that took 2^n steps before), and many roots sharing
    /// one queue. The steps stay within a fixed multiple of sessions + edges, and the counts
    /// match a BFS from each root.
    @Test func tenThousandSessionsCostStepsLinearInSessionsAndEdges() async {
        await propertyCheck(count: 3, input: Gen.int(in: 1...64), Gen.uint64()) { roots, seed in
            for shape in 0...3 {
                let waits = LargeGraphs.make(shape: shape, roots: roots, seed: seed)
                let graph = BlockingGraph(waits: waits)
                let oracle = GraphOracle(sessions: graph.blocked.sessions.map { $0 })
                #expect(graph.nodeCount == 10_000)
                #expect(graph.roots.count == roots)
                #expect(graph.steps <= 14 * (graph.nodeCount + graph.edgeCount) + 64 * 16, "\(graph.steps) steps, shape \(shape)")
                for root in graph.roots { #expect(root.blockedCount == oracle.reach(root.pid).count) }
            }
        }
    }

    /// More roots than a word holds cost one pass per 64 of them, as documented.
    @Test func manyRootsCostOnePassPerSixtyFourRoots() {
        let waits = LargeGraphs.make(shape: 3, roots: 1000, seed: 7)
        let graph = BlockingGraph(waits: waits)
        #expect(graph.roots.count == 1000)
        #expect(graph.roots.allSatisfy { $0.blockedCount == 9_000 })
        #expect(graph.steps <= Self.stepBound(nodes: graph.nodeCount, edges: graph.edgeCount, roots: 1000))
    }
}

/// Shapes of 10,000 sessions as bare waits: pids 1…roots are the roots, the rest wait.
enum LargeGraphs {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func make(shape: Int, roots: Int, seed: UInt64, nodes: Int = 10_000) -> [(pid: Int32, blockedBy: [Int32])] {
        var rng = SplitMix(state: seed)
        let first = Int32(roots + 1), last = Int32(nodes)
        var blockers: [Int32: [Int32]] = [:]
        // Every root blocks someone, spread over the waiters (all on the queue's head in shape 3).
        if shape < 3 {
            for root in Int32(1)...Int32(roots) { blockers[first + (root - 1) % (last - first + 1), default: []].append(root) }
        }
        switch shape {
        case 0:  // One chain, each waiter behind the one before; a cycle at its far end.
            for pid in (first + 1)...last { blockers[pid, default: []].append(pid - 1) }
            blockers[last - 10, default: []].append(last)
        case 1:  // Random: each waiter behind 1–3 earlier sessions (diamonds), some behind later ones (cycles).
            for pid in (first + 1)...last {
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    blockers[pid, default: []].append(Int32.random(in: 1..<pid, using: &rng))
                }
                if Int.random(in: 0..<20, using: &rng) == 0 { blockers[pid, default: []].append(Int32.random(in: pid...last, using: &rng)) }
            }
        case 2:  // A queue of 150, each behind every earlier one, the last waited on by the first
            // (a pending deadlock inside it), then a chain to fill up.
            let queueEnd = first + 149
            for pid in (first + 1)...queueEnd { blockers[pid, default: []] += Array(first..<pid) }
            blockers[first, default: []].append(queueEnd)
            for pid in (queueEnd + 1)...last { blockers[pid, default: []].append(pid - 1) }
        default:  // Every root blocks the head of one queue; the queue is a chain.
            for root in Int32(1)...Int32(roots) { blockers[first, default: []].append(root) }
            for pid in (first + 1)...last { blockers[pid, default: []].append(pid - 1) }
        }
        return (first...last).map { ($0, blockers[$0] ?? [first]) }
    }
}
