import Testing

@testable import PGLockExporter

@Suite struct BlockingGraphTests {
    func waiter(_ pid: Int32, _ blockers: [Int32], datname: String = "app") -> Session {
        Session.fixture(pid: pid, datname: datname, state: "active", waitingOnLock: true, blockedBy: blockers, lockWaitSeconds: 1)
    }

    func idleInTransaction(_ pid: Int32, seconds: Double = 100) -> Session {
        Session.fixture(pid: pid, state: "idle in transaction", stateSeconds: seconds, transactionSeconds: seconds)
    }

    @Test func seedIncidentChain() {
        // 10 idle in transaction; 20 = ALTER TABLE behind 10; 30, 31 = readers behind the ALTER.
        let graph = BlockingGraph(sessions: [
            idleInTransaction(10), waiter(20, [10]), waiter(30, [20]), waiter(31, [20]), Session.fixture(pid: 40),
        ])
        #expect(graph.roots.map(\.pid) == [10])
        #expect(graph.roots[0].blockedCount == 3)
        #expect(graph.roots[0].depth == 2)
        #expect(graph.roots[0].state == "idle in transaction")
        #expect(Set(graph.blocked.pids) == [20, 30, 31])
        #expect(graph.directWaiters(of: 10) == [20])
        #expect(graph.directWaiters(of: 20) == [30, 31])
        #expect(graph.allWaiters(of: 10) == [20, 30, 31])
        #expect(!graph.isBlocking(40))
    }

    @Test func readerQueuedBehindBothRootAndMigrationCountsOnceAndDepthIsLongestPath() {
        // pg_blocking_pids of a reader names the holder and the queued ALTER: a diamond.
        let graph = BlockingGraph(sessions: [idleInTransaction(10), waiter(20, [10]), waiter(30, [10, 20])])
        #expect(graph.roots.map(\.pid) == [10])
        #expect(graph.roots[0].blockedCount == 2)
        #expect(graph.roots[0].depth == 2)
        #expect(graph.directWaiters(of: 10) == [20, 30])
    }

    @Test func severalRootsOrderedByWaitersThenAgeThenPid() {
        let graph = BlockingGraph(sessions: [
            idleInTransaction(1, seconds: 5), idleInTransaction(2, seconds: 50), idleInTransaction(3, seconds: 50),
            waiter(11, [1]), waiter(12, [1]), waiter(21, [2]), waiter(31, [3]),
        ])
        #expect(graph.roots.map(\.pid) == [1, 2, 3])
        #expect(graph.roots.map(\.blockedCount) == [2, 1, 1])
        #expect(graph.roots.map(\.depth) == [1, 1, 1])
    }

    @Test func waiterBehindTwoRootsCountsUnderEach() {
        let graph = BlockingGraph(sessions: [idleInTransaction(1), idleInTransaction(2), waiter(9, [1, 2])])
        #expect(graph.roots.map(\.pid).sorted() == [1, 2])
        #expect(graph.roots.allSatisfy { $0.blockedCount == 1 && $0.depth == 1 })
        #expect(graph.blocked.count == 1)
    }

    @Test func cycleWithoutRootTerminatesAndReportsNoRoot() {
        let graph = BlockingGraph(sessions: [waiter(1, [2]), waiter(2, [1])])
        #expect(graph.roots.isEmpty)
        #expect(graph.blocked.count == 2)
        #expect(graph.allWaiters(of: 1) == [2])
    }

    /// A deadlock nobody outside holds up (1 ⇄ 2), with 3 queued behind 2: no root, three
    /// blocked sessions, the cycle named; each member's waiters are the other and those behind.
    @Test func aPureDeadlockHasNoRootAndIsNamedAsACycle() {
        let graph = BlockingGraph(sessions: [waiter(1, [2]), waiter(2, [1]), waiter(3, [2])])
        #expect(graph.roots.isEmpty)
        #expect(graph.blocked.pids == [1, 2, 3])
        #expect(graph.cycles == [[1, 2]])
        #expect(graph.allWaiters(of: 1) == [2, 3])
        #expect(graph.allWaiters(of: 2) == [1, 3])
        #expect(graph.roots(blocking: [3]).isEmpty)
    }

    /// The fuzzing entry point takes bare waits, hostile ones included.
    @Test func bareWaitsBuildTheSameGraph() {
        let graph = BlockingGraph(waits: [(20, [10]), (30, [20, 20, 30]), (31, [20]), (31, [10]), (10, [])])
        #expect(graph.roots.map(\.pid) == [10])
        #expect(graph.roots[0].session?.pid == 10)  // a row that waits on nobody: a root
        #expect(graph.roots[0].blockedCount == 3)
        #expect(graph.roots[0].depth == 2)
        #expect(graph.directWaiters(of: 10) == [20, 31])
        #expect(graph.directWaiters(of: 20) == [30, 31])
        #expect(graph.edgeCount == 4)
    }

    @Test func cycleBelowARootIsWalkedOnce() {
        // 1 is the root; 2 and 3 wait on each other and on 1.
        let graph = BlockingGraph(sessions: [idleInTransaction(1), waiter(2, [1, 3]), waiter(3, [2])])
        #expect(graph.roots.map(\.pid) == [1])
        #expect(graph.roots[0].blockedCount == 2)
        #expect(graph.roots[0].depth == 2)
    }

    @Test func preparedTransactionIsRootPidZeroWithTheWaitersDatabase() {
        let graph = BlockingGraph(sessions: [waiter(5, [0], datname: "billing")])
        #expect(graph.roots.count == 1)
        #expect(graph.roots[0].pid == 0)
        #expect(graph.roots[0].isPreparedTransaction)
        #expect(graph.roots[0].session == nil)
        #expect(graph.roots[0].state == "prepared transaction")
        #expect(graph.roots[0].datname == "billing")
    }

    @Test func lockWaiterWithNoBlockersIsNotBlocked() {
        let graph = BlockingGraph(sessions: [waiter(5, [])])
        #expect(graph.blocked.isEmpty)
        #expect(graph.roots.isEmpty)
    }

    /// A background process is named by its type, never mistaken for an active client.
    @Test func rootThatIsNotAClientIsReportedWithItsBackendType() {
        let autovacuum = Session.fixture(pid: 7, backendType: "autovacuum worker", state: "active", stateSeconds: 3)
        let graph = BlockingGraph(sessions: [autovacuum, waiter(8, [7])])
        #expect(graph.roots.map(\.pid) == [7])
        #expect(graph.roots[0].state == "autovacuum worker")
    }

    /// Edges 1→9→5→7 plus 1→5: the longest path from 1 is 1→9→5→7, three edges, whichever way
    /// the tree is drawn.
    @Test func depthIsTheLongestPathEvenWhenAShortcutIsSeenFirst() {
        let graph = BlockingGraph(sessions: [
            Session.fixture(pid: 1, state: "idle in transaction"), waiter(9, [1]), waiter(5, [1, 9]), waiter(7, [5]),
        ])
        #expect(graph.roots.map(\.pid) == [1])
        #expect(graph.roots[0].depth == 3)
        #expect(graph.roots[0].blockedCount == 3)
    }

    /// A cycle (2→3→4→2) hanging off two roots: same input, same depth, every time, whatever
    /// order the sessions come in.
    @Test func depthWithACycleIsDeterministic() {
        let sessions = [
            Session.fixture(pid: 1, state: "idle in transaction"), Session.fixture(pid: 10, state: "idle in transaction"),
            waiter(2, [1, 4]), waiter(3, [2]), waiter(4, [3, 10]), waiter(6, [4]),
        ]
        var seen = Set<[Int]>()
        for _ in 0..<50 {
            let graph = BlockingGraph(sessions: sessions.shuffled())
            seen.insert(graph.roots.sorted { $0.pid < $1.pid }.map(\.depth))
        }
        #expect(seen.count == 1)
        // The cycle {2, 3, 4} counts as a queue of its 3 members (2 edges), whichever member a
        // path enters by: from 1, 1→cycle→6 is 1 + 2 + 1 = 4 (also the longest simple path,
        // 1→2→3→4→6); from 10, 10→cycle→6 is 4 too (the longest simple path, 10→4→2→3, has 3:
        // the depth of a chain through a cycle no longer depends on where it enters).
        #expect(seen.first == [4, 4])
    }
}
