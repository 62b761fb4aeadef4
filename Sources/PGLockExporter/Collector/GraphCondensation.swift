/// The strongly connected components of a graph given as adjacency lists, found with Tarjan's
/// algorithm run on an explicit stack (a chain of 10,000 sessions needs no deep call stack).
/// Components are numbered in the order Tarjan completes them, so every edge between two
/// components runs from a higher number to a lower one: counting down is a topological order.
///
/// Every function adds the basic steps it takes to `steps` (node and edge visits, bit-set
/// words, counted pairs), so tests can bound the cost (`BlockingGraph.steps`).
struct GraphCondensation {
    /// node → its component.
    let component: [Int]
    /// component → its nodes.
    let members: [[Int]]

    init(_ edges: [[Int]], steps: inout Int) {
        let n = edges.count
        var index = [Int](repeating: -1, count: n)
        var low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        var calls: [(node: Int, next: Int)] = []
        var component = [Int](repeating: -1, count: n)
        var members: [[Int]] = []
        var counter = 0
        /// Numbers a node on first sight and puts it on both stacks (Tarjan's "visit").
        func discover(_ node: Int) {
            index[node] = counter
            low[node] = counter
            counter += 1
            stack.append(node)
            onStack[node] = true
            calls.append((node, 0))
        }
        for start in 0..<n where index[start] < 0 {
            discover(start)
            while let (v, next) = calls.last {
                steps += 1
                if next < edges[v].count {
                    calls[calls.count - 1].next = next + 1
                    let w = edges[v][next]
                    if index[w] < 0 {
                        discover(w)
                    } else if onStack[w] {
                        low[v] = min(low[v], index[w])
                    }
                    continue
                }
                calls.removeLast()
                if let parent = calls.last?.node { low[parent] = min(low[parent], low[v]) }
                guard low[v] == index[v] else { continue }
                var nodes: [Int] = []
                while true {
                    steps += 1
                    let w = stack.removeLast()
                    onStack[w] = false
                    component[w] = members.count
                    nodes.append(w)
                    if w == v { break }
                }
                members.append(nodes)
            }
        }
        self.component = component
        self.members = members
    }

    /// Per node: edges on the longest path from it, a component of k members counting as a queue
    /// of them (k − 1 edges). One pass in topological order: linear.
    func depths(_ edges: [[Int]], steps: inout Int) -> [Int] {
        var below = [Int](repeating: 0, count: members.count)
        for c in members.indices {
            var longest = 0
            for u in members[c] {
                steps += 1
                for v in edges[u] {
                    steps += 1
                    let d = component[v]
                    if d != c { longest = max(longest, 1 + below[d]) }
                }
            }
            below[c] = members[c].count - 1 + longest
        }
        return component.map { below[$0] }
    }

    /// For each of `sources`: how many other nodes it reaches. Reach sets propagate as bit sets,
    /// 64 sources at a time (one lane each), in topological order, and each component adds its
    /// size to the lanes that reach it with bit-sliced counters (`LaneCounters`), so a component
    /// costs one word operation per set bit of its size, amortized, not one per lane: each batch
    /// of 64 sources is one linear pass, (nodes + edges) · ⌈sources / 64⌉ steps in all.
    func reachCounts(from sources: [Int], _ edges: [[Int]], steps: inout Int) -> [Int] {
        var counts: [Int] = []
        counts.reserveCapacity(sources.count)
        var words = [UInt64](repeating: 0, count: members.count)
        var first = 0
        while first < sources.count {
            let batch = sources[first..<min(first + 64, sources.count)]
            if first > 0 {
                steps += words.count
                for c in words.indices { words[c] = 0 }
            }
            for (lane, node) in batch.enumerated() { words[component[node]] |= 1 << UInt64(lane) }
            var sums = LaneCounters()
            for c in members.indices.reversed() {
                steps += 1
                let word = words[c]
                if word == 0 { continue }
                for u in members[c] {
                    steps += 1
                    for v in edges[u] {
                        steps += 1
                        let d = component[v]
                        if d != c { words[d] |= word }
                    }
                }
                sums.add(members[c].count, to: word, steps: &steps)
            }
            // A source reaches itself: it is no waiter of its own.
            for lane in 0..<batch.count { counts.append(sums.value(of: lane, steps: &steps) - 1) }
            first += 64
        }
        return counts
    }
}

/// 64 counters side by side, bit-sliced: `slices[k]` holds bit k of every lane's counter. Adding
/// one number to many lanes at once costs one word operation per set bit of the number plus its
/// carries, and the carries are amortized constant (each carry clears a bit that an earlier
/// addition set), so adding n components' sizes costs O(n + Σ log₂ size) word operations.
struct LaneCounters {
    private var slices: [UInt64] = []

    mutating func add(_ value: Int, to lanes: UInt64, steps: inout Int) {
        var rest = value
        var bit = 0
        while rest != 0 {
            steps += 1
            if rest & 1 != 0 {
                var carry = lanes
                var k = bit
                while carry != 0 {
                    steps += 1
                    while k >= slices.count { slices.append(0) }
                    let old = slices[k]
                    slices[k] = old ^ carry
                    carry = old & carry
                    k += 1
                }
            }
            rest >>= 1
            bit += 1
        }
    }

    func value(of lane: Int, steps: inout Int) -> Int {
        var total = 0
        for k in slices.indices {
            steps += 1
            total |= Int((slices[k] >> UInt64(lane)) & 1) << k
        }
        return total
    }
}
