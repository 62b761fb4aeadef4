import Testing

@testable import PGLockExporter

@Suite struct RemediationPolicyTests {
    let own: Int32 = 99

    func snapshot(_ sessions: [Session]) -> ActivitySnapshot {
        ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [],
            settings: ServerSettings(versionString: "15", maxConnections: 100, timeouts: [:]))
    }

    func decide(_ sessions: [Session], _ configure: (inout RemediationPolicy) -> Void = { _ in }) -> [Decision] {
        var policy = RemediationPolicy()
        configure(&policy)
        return policy.decide(snapshot: snapshot(sessions), graph: BlockingGraph(sessions: sessions), ownPID: own)
    }

    /// The seed incident: 10 idle in transaction for 120s, 20 the ALTER, 30 a reader.
    var incident: [Session] {
        [
            Session.fixture(pid: 10, applicationName: "worker", state: "idle in transaction", stateSeconds: 120, transactionSeconds: 121),
            Session.fixture(pid: 20, applicationName: "alembic", state: "active", stateSeconds: 100, waitingOnLock: true, blockedBy: [10]),
            Session.fixture(pid: 30, applicationName: "web", state: "active", stateSeconds: 90, waitingOnLock: true, blockedBy: [20]),
            Session.fixture(pid: 40, applicationName: "lonely", state: "idle in transaction", stateSeconds: 500),
        ]
    }

    @Test func targetsOnlyTheIdleRootBlocker() {
        let decisions = decide(incident)
        #expect(decisions.map(\.pid) == [10])
        #expect(decisions[0].action == .terminate)
        #expect(decisions[0].blockedSessions == 2)
        #expect(decisions[0].reason == "root blocker idle in transaction for 2m, 2 sessions waiting behind it")
    }

    @Test func rootYoungerThanMinIdleIsSkipped() {
        let decisions = decide(incident) { $0.minIdleSeconds = 300 }
        #expect(decisions.map(\.action) == [.skip])
        #expect(decisions[0].reason == "idle in transaction for 2m, less than --min-idle 5m")
    }

    @Test func allIdleInTransactionWidensToSessionsThatBlockNobody() {
        let decisions = decide(incident) { $0.allIdleInTransaction = true }
        #expect(decisions.map(\.pid) == [10, 40])
        #expect(decisions.map(\.action) == [.terminate, .terminate])
    }

    @Test func theWaitingMigrationIsNeverChosenEvenByPidWithForce() {
        let decisions = decide(incident) {
            $0.pid = 20
            $0.force = true
        }
        #expect(decisions.map(\.action) == [.skip])
        #expect(decisions[0].reason == "it is itself waiting on a lock: a victim, not the cause")
    }

    @Test func activeRootIsNotATargetAndPidNeedsForce() {
        let sessions = [
            Session.fixture(pid: 10, state: "active", stateSeconds: 600),
            Session.fixture(pid: 20, state: "active", waitingOnLock: true, blockedBy: [10]),
        ]
        #expect(decide(sessions).map(\.reason) == ["it is active, not idle in transaction"])
        #expect(decide(sessions) { $0.pid = 10 }.map(\.reason) == ["it is active, not idle in transaction (--force to terminate it anyway)"])
        #expect(decide(sessions) { $0.pid = 10; $0.force = true }.map(\.action) == [.terminate])
    }

    @Test func exclusionsMatchWholeValues() throws {
        let workStar = try RemediationPolicy.Pattern("work.*"), work = try RemediationPolicy.Pattern("work")
        let app = try RemediationPolicy.Pattern("app"), other = try RemediationPolicy.Pattern("other")
        let aDotP = try RemediationPolicy.Pattern("a.p")
        let byApp = decide(incident) { $0.excludeApplications = [workStar] }
        #expect(byApp[0].action == .skip)
        #expect(byApp[0].reason == "application \"worker\" is excluded (--exclude-application work.*)")
        let partial = decide(incident) { $0.excludeApplications = [work] }
        #expect(partial[0].action == .terminate)
        let byUser = decide(incident) { $0.excludeUsers = [app] }
        #expect(byUser[0].reason == "user \"app\" is excluded (--exclude-user app)")
        let onlyOther = decide(incident) { $0.onlyDatabases = [other] }
        #expect(onlyOther[0].reason == "database \"app\" is not in --only-database")
        let excludedDB = decide(incident) { $0.excludeDatabases = [aDotP] }
        #expect(excludedDB[0].action == .skip)
    }

    @Test func neverOwnSessionNonClientsOrPreparedTransactions() {
        let sessions = [
            Session.fixture(pid: own, state: "idle in transaction", stateSeconds: 900),
            Session.fixture(pid: 1, state: "active", waitingOnLock: true, blockedBy: [own]),
            Session.fixture(pid: 7, backendType: "autovacuum worker", state: "active", stateSeconds: 900),
            Session.fixture(pid: 2, state: "active", waitingOnLock: true, blockedBy: [7]),
            Session.fixture(pid: 3, state: "active", waitingOnLock: true, blockedBy: [0]),
        ]
        let reasons = Dictionary(uniqueKeysWithValues: decide(sessions).map { ($0.pid, $0.reason) })
        #expect(reasons[own] == "this is the remediator's own session")
        #expect(reasons[7] == "not a client backend (autovacuum worker)")
        #expect(reasons[0] == "a prepared transaction holds the lock: it has no session to end; see pg_prepared_xacts")
        #expect(decide(sessions).allSatisfy { $0.action == .skip })
    }

    /// A pid terminated a moment ago (still shown while it exits) takes no place under the cap.
    @Test func skippedPidsAreNoCandidatesAndTakeNoPlaceUnderTheCap() {
        let sessions = [
            Session.fixture(pid: 1, state: "idle in transaction", stateSeconds: 900),
            Session.fixture(pid: 2, state: "idle in transaction", stateSeconds: 800),
            Session.fixture(pid: 10, state: "active", waitingOnLock: true, blockedBy: [1]),
            Session.fixture(pid: 20, state: "active", waitingOnLock: true, blockedBy: [2]),
        ]
        var policy = RemediationPolicy()
        policy.maxTerminations = 1
        let decisions = policy.decide(snapshot: snapshot(sessions), graph: BlockingGraph(sessions: sessions), ownPID: own, skipping: [1])
        #expect(decisions.map(\.pid) == [2])
        #expect(decisions.map(\.action) == [.terminate])
    }

    @Test func aNamedPreparedTransactionGetsTheStatementAPersonMayRun() {
        let prepared = Session(standingFor: PreparedTransaction(gid: "deploy-'42'", datname: "app", owner: "app", ageSeconds: 60), index: 0)
        let decisions = decide([prepared, Session.fixture(pid: 3, state: "active", waitingOnLock: true, blockedBy: [prepared.pid])])
        #expect(decisions.map(\.displayPID) == [0])
        #expect(decisions[0].code == .preparedTransaction)
        #expect(
            decisions[0].reason
                == "prepared transaction 'deploy-''42''' holds the lock: it has no session to end; a person may run ROLLBACK PREPARED 'deploy-''42''' (or COMMIT PREPARED 'deploy-''42''')")
        #expect(decisions[0].action == .skip)
    }

    @Test func capLimitsTerminationsPerRun() {
        var sessions: [Session] = []
        for root in Int32(1)...3 {
            sessions.append(Session.fixture(pid: root, state: "idle in transaction", stateSeconds: 100 * Double(root)))
            sessions.append(Session.fixture(pid: root + 10, state: "active", waitingOnLock: true, blockedBy: [root]))
        }
        let decisions = decide(sessions) { $0.maxTerminations = 2 }
        #expect(decisions.map(\.pid) == [3, 2, 1])
        #expect(decisions.map(\.action) == [.terminate, .terminate, .skip])
        #expect(decisions[2].reason == "the cap of 2 terminations per run is reached (--max-terminations)")
    }

    @Test func invalidPatternThrows() {
        #expect(throws: (any Error).self) { try RemediationPolicy.Pattern("(") }
    }
}
