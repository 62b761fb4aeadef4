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
        #expect(Set(graph.blocked.keys) == [20, 30, 31])
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

    @Test func rootThatIsNotAClientIsReportedWithItsState() {
        let autovacuum = Session.fixture(pid: 7, backendType: "autovacuum worker", state: "active", stateSeconds: 3)
        let graph = BlockingGraph(sessions: [autovacuum, waiter(8, [7])])
        #expect(graph.roots.map(\.pid) == [7])
        #expect(graph.roots[0].state == "active")
    }
}
