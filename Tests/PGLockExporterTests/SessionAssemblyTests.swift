import Testing

@testable import PGLockExporter

/// The one model of "blocked", built from what the statements read.
@Suite struct SessionAssemblyTests {
    func waiter(_ pid: Int32, _ blockers: [Int32], leader: Int32? = nil, type: String = "client backend") -> Session {
        var s = Session.fixture(pid: pid, backendType: type, state: "active", waitingOnLock: true, blockedBy: blockers)
        s.leaderPID = leader
        return s
    }

    @Test func aParallelWorkerCountsAsItsLeaderAndIsNeverASessionOfItsOwn() {
        let root = Session.fixture(pid: 1, state: "idle in transaction")
        var leader = Session.fixture(pid: 20, state: "active")
        leader.leaderPID = nil
        let workers = [waiter(21, [1], leader: 20, type: "parallel worker"), waiter(22, [1], leader: 20, type: "parallel worker")]
        var locks = LocksStatement.Rows()
        locks.waits[21] = .init(seconds: 4, relation: "public.big", datname: "app")
        locks.waits[22] = .init(seconds: 6, relation: "public.big", datname: "app")
        var sessions = [root, leader] + workers
        SessionAssembly.assemble(&sessions, locks: locks, prepared: [])
        #expect(sessions.map(\.pid) == [1, 20])
        let folded = sessions[1]
        #expect(folded.isBlocked)
        #expect(folded.blockedBy == [1])
        #expect(folded.lockWaitSeconds == 6)
        #expect(folded.waitRelation == "public.big")
        let graph = BlockingGraph(sessions: sessions)
        #expect(graph.blocked.pids.sorted() == [20])
        #expect(graph.roots.map(\.blockedCount) == [1])
    }

    @Test func eachPreparedTransactionInTheWayBecomesARootOfItsOwn() {
        let prepared = [
            PreparedTransaction(gid: "a", datname: "app", owner: "deployer", ageSeconds: 30),
            PreparedTransaction(gid: "b", datname: "app", owner: "deployer", ageSeconds: 90),
            PreparedTransaction(gid: "idle", datname: "app", owner: "deployer", ageSeconds: 5),
        ]
        var locks = LocksStatement.Rows()
        locks.preparedHolders = [5: ["a"], 6: ["b"], 7: ["a", "b"]]
        var sessions = [waiter(5, [0]), waiter(6, [0]), waiter(7, [0]), waiter(8, [0])]
        SessionAssembly.assemble(&sessions, locks: locks, prepared: prepared)
        let rows = sessions.filter(\.isPreparedTransaction)
        #expect(rows.map(\.gid) == ["a", "b"])  // the one blocking nobody is not a root
        #expect(rows.map(\.displayPID) == [0, 0])
        #expect(rows.map(\.stateSeconds) == [30, 90])
        #expect(rows.map(\.stateLabel) == ["prepared transaction", "prepared transaction"])
        let graph = BlockingGraph(sessions: sessions)
        let roots = Dictionary(uniqueKeysWithValues: graph.roots.compactMap { root in root.session?.gid.map { ($0, root) } })
        #expect(roots["a"]?.blockedCount == 2)
        #expect(roots["b"]?.blockedCount == 2)
        #expect(roots["a"]?.datname == "app")
        // A holder that could not be named stays the anonymous pid 0.
        #expect(graph.roots.filter { $0.pid == 0 }.map(\.blockedCount) == [1])
    }

    @Test func aWaitingStartupProcessIsBlockedByTheHoldersOfItsRelation() {
        let reader = Session.fixture(pid: 30, datname: "app", state: "idle in transaction")
        let startup = Session.fixture(
            pid: 2, datname: nil, usename: nil, backendType: "startup", state: nil, waitingOnLock: true, blockedBy: [])
        let queued = waiter(31, [2])
        var locks = LocksStatement.Rows()
        locks.waits[2] = .init(seconds: 12, relation: "public.features", datname: "app")
        locks.startupHolders[2] = [30]
        var sessions = [reader, startup, queued]
        SessionAssembly.assemble(&sessions, locks: locks, prepared: [])
        let graph = BlockingGraph(sessions: sessions)
        #expect(graph.roots.map(\.pid) == [30])
        #expect(graph.roots[0].depth == 2)
        #expect(graph.roots[0].blockedCount == 2)
        #expect(graph.blocked[2]?.stateLabel == "startup")
        #expect(graph.blocked[2]?.datname == "app")
    }
}

@Suite struct TerminalTextTests {
    @Test func controlCharactersAreShownNotSent() {
        #expect(TerminalText.safe("plain text, ü and 東京") == "plain text, ü and 東京")
        #expect(TerminalText.safe("\u{1B}]0;pwned\u{07}") == "\\x1b]0;pwned\\x07")
        #expect(TerminalText.safe("\u{1B}[2Jx") == "\\x1b[2Jx")
        #expect(TerminalText.safe("a\u{9B}31mb\u{7F}") == "a\\x9b31mb\\x7f")
        #expect(TerminalText.safe("tab\there\nnew") == "tab\\x09here\\x0anew")
        #expect(TerminalText.safe("abc\u{202E}fed") == "abc\\u{202e}fed")
    }
}

@Suite struct LockTargetTests {
    @Test func everyKindOfLockIsNamed() {
        #expect(LockTarget(locktype: "relation", relationName: "public.features").description == "public.features")
        #expect(LockTarget(locktype: "relation", datname: "other", relationOID: 16384).description == "relation 16384 in database other")
        #expect(LockTarget(locktype: "tuple", relationName: "public.features", page: 0, tuple: 3).description == "row (0,3) of public.features")
        #expect(LockTarget(locktype: "transactionid", transactionID: "736").description == "transaction 736")
        #expect(LockTarget(locktype: "virtualxid", virtualXID: "4/12").description == "virtual transaction 4/12")
        let bigint = LockTarget(locktype: "advisory", classID: 0, objectID: 42, objectSubID: 1)
        #expect(bigint.advisoryKey == 42)
        #expect(bigint.description == "advisory lock 42")
        #expect(LockTarget(locktype: "advisory", classID: 1, objectID: 0, objectSubID: 1).advisoryKey == 1 << 32)
        #expect(LockTarget(locktype: "advisory", classID: 4294967295, objectID: 4294967295, objectSubID: 1).advisoryKey == -1)
        #expect(LockTarget(locktype: "advisory", classID: 7, objectID: 9, objectSubID: 2).description == "advisory lock (7, 9)")
        #expect(LockTarget(locktype: "object", datname: "app", classID: 1259, objectID: 5, objectSubID: 0).description
            == "object (classid 1259, objid 5, objsubid 0) in database app")
    }
}
