import Testing

@testable import PGLockExporter

/// The migration watchdog's decisions, from snapshots: 10 the worker idle in transaction, 20 the
/// migration's ALTER waiting behind it, 30 a reader queued behind the migration.
@Suite struct WatchdogTests {
    func snapshot(_ sessions: [Session]) -> ActivitySnapshot {
        ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [],
            settings: ServerSettings(versionString: "15", maxConnections: 100, timeouts: [:]))
    }

    func incident(waited: Double, idle: Double = 5, workerApp: String = "worker") -> ActivitySnapshot {
        snapshot([
            Session.fixture(
                pid: 10, applicationName: workerApp, clientAddr: "10.0.0.5", state: "idle in transaction", stateSeconds: idle,
                transactionSeconds: idle + 1, backendStart: "2026-12-01 08:00:00+00", stateChange: "2026-12-01 08:00:01+00",
                query: "SELECT * FROM features"),
            Session.fixture(
                pid: 20, applicationName: "", clientAddr: "127.0.0.1", state: "active", stateSeconds: waited, waitingOnLock: true,
                blockedBy: [10], lockWaitSeconds: waited, backendStart: "2026-12-01 08:00:05+00",
                query: "ALTER TABLE features ADD COLUMN signature text"),
            Session.fixture(
                pid: 30, applicationName: "web", state: "active", stateSeconds: waited, waitingOnLock: true, blockedBy: [20],
                lockWaitSeconds: waited),
        ])
    }

    func watchdog(terminateAfter: Double? = nil, policy: RemediationPolicy = RemediationPolicy()) -> Watchdog {
        var w = Watchdog(maxLockWaitSeconds: 1.5, terminateIdleAfterSeconds: terminateAfter, policy: policy, ownPID: 99)
        w.startAttempt(1)
        return w
    }

    @Test func aWaitIsReportedOnceWithItsTreeAndCancelledPastTheLimit() {
        var w = watchdog()
        let first = w.observe(incident(waited: 0.2), migration: [20])
        #expect(first.events.map(\.event) == [.lockWait, .blocker])
        #expect(first.events[0].pid == 20)
        #expect(first.events[0].blockedBy == [10])
        #expect(first.events[0].message == "attempt 1: the migration's session pid 20 waits behind pid 10 (200ms so far)")
        #expect(first.events[1].tree?.pid == 10)
        #expect(first.events[1].tree?.blocked.map(\.pid) == [20])
        #expect(first.events[1].message.contains("pid 10  idle in transaction 5s  db=app user=app app=worker client=10.0.0.5"))
        #expect(first.events[1].message.contains("query: SELECT * FROM features"))
        #expect(first.cancel.isEmpty)

        let second = w.observe(incident(waited: 1.4), migration: [20])
        #expect(second.events.isEmpty)  // the same wait behind the same root: said once
        #expect(second.cancel.isEmpty)
        // It crosses --max-lock-wait 1.5s in 0.1s: look again then, not a whole poll later.
        #expect(abs((second.lookAgainAfter ?? 0) - 0.11) < 1e-9)

        let third = w.observe(incident(waited: 1.6), migration: [20])
        #expect(third.cancel.map(\.session.pid) == [20])
        #expect(third.cancel.map(\.waitSeconds) == [1.6])
        let fourth = w.observe(incident(waited: 1.8), migration: [20])
        #expect(fourth.cancel.isEmpty)  // cancelled once per wait

        w.endAttempt()
        #expect(w.totalLockWaitSeconds == 1.8)
        #expect(w.watched == [20])
        #expect(w.blockers.map(\.pid) == [10])
        #expect(w.blockers[0].text == "pid 10 (idle in transaction 5s, user=app, app=worker, client=10.0.0.5)")
    }

    @Test func theTreeShowsThePathToTheMigrationAndAFewOfItsQueue() {
        var sessions = incident(waited: 0.4).sessions
        for pid in Int32(31)...Int32(35) {
            sessions.append(Session.fixture(pid: pid, applicationName: "web", state: "active", waitingOnLock: true, blockedBy: [20], lockWaitSeconds: 0.3))
        }
        // Another waiter on the worker, not behind the migration.
        sessions.append(Session.fixture(pid: 40, applicationName: "cron", state: "active", waitingOnLock: true, blockedBy: [10], lockWaitSeconds: 0.3))
        var w = watchdog()
        let plan = w.observe(snapshot(sessions), migration: [20])
        let tree = plan.events[1].tree
        #expect(tree?.pid == 10)
        #expect(tree?.blockedCount == 8)
        #expect(tree?.blocked.map(\.pid) == [20])
        #expect(tree?.blocked.first?.blocked.map(\.pid) == [30, 31, 32])
        #expect(plan.events[1].message.hasSuffix("\n… and 4 more sessions in this tree (check shows them all)"))
    }

    @Test func aMigrationBlockedByItsOwnSessionIsToldSo() {
        var w = watchdog()
        let plan = w.observe(incident(waited: 0.4), migration: [10, 20])
        #expect(plan.events[1].message.hasPrefix("attempt 1: root blocker pid 10 (one of the migration's own sessions: it blocks itself)"))
    }

    @Test func aNewWaitCountsAgain() {
        var w = watchdog()
        _ = w.observe(incident(waited: 0.4), migration: [20])
        // The wait went down: a new wait of the same session (the next statement).
        let again = w.observe(incident(waited: 0.1), migration: [20])
        #expect(again.events.map(\.event) == [.lockWait, .blocker])
        w.endAttempt()
        #expect(abs(w.totalLockWaitSeconds - 0.5) < 1e-9)
    }

    @Test func sessionsThatAreNotTheMigrationsAreNotWatched() {
        var w = watchdog(terminateAfter: 1)
        let plan = w.observe(incident(waited: 3), migration: [])
        #expect(plan.events.isEmpty && plan.cancel.isEmpty && plan.terminate.isEmpty)
    }

    @Test func terminatesOnlyTheIdleRootTheMigrationWaitsBehind() {
        var w = watchdog(terminateAfter: 2)
        #expect(w.observe(incident(waited: 0.3, idle: 1), migration: [20]).terminate.isEmpty)  // idle 1s < 2s
        let plan = w.observe(incident(waited: 0.5, idle: 2.5), migration: [20])
        #expect(plan.terminate.map(\.pid) == [10])
        #expect(plan.terminate[0].code == .rootBlocker)
    }

    @Test func theRunsTerminationCapHolds() {
        var policy = RemediationPolicy()
        policy.maxTerminations = 1
        var w = watchdog(terminateAfter: 1, policy: policy)
        let plan = w.observe(incident(waited: 0.5, idle: 30), migration: [20])
        #expect(plan.terminate.map(\.pid) == [10])
        w.noteTerminated(10)
        #expect(w.blockers.map(\.terminated) == [true])
        // The same root again (it survived, say): the cap of one per run is used up.
        let again = w.observe(incident(waited: 0.7, idle: 31), migration: [20])
        #expect(again.terminate.isEmpty)
        #expect(again.events.last?.decision?.code == .capReached)
    }

    @Test func neverTerminatesTheMigrationsOwnSessions() {
        // The migration's own session 10 left idle in transaction blocks its other session 20.
        var w = watchdog(terminateAfter: 1)
        let plan = w.observe(incident(waited: 0.5, idle: 30), migration: [10, 20])
        #expect(plan.terminate.isEmpty)
    }

    @Test func exclusionsApplyAndAreReportedOnce() throws {
        var policy = RemediationPolicy()
        policy.excludeApplications = [try RemediationPolicy.Pattern("work.*")]
        var w = watchdog(terminateAfter: 1, policy: policy)
        let plan = w.observe(incident(waited: 0.5, idle: 30), migration: [20])
        #expect(plan.terminate.isEmpty)
        #expect(plan.events.map(\.event) == [.lockWait, .blocker, .skipped])
        #expect(plan.events[2].message.contains("application \"worker\" is excluded (--exclude-application work.*)"))
        #expect(w.observe(incident(waited: 0.7, idle: 30), migration: [20]).events.isEmpty)
    }
}
