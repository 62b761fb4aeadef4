import Testing

@testable import PGLockExporter

@Suite struct SnapshotMetricsTests {
    func render(
        _ sessions: [Session], databases: [String] = ["app", "quiet"], options: MetricOptions = MetricOptions(),
        timeouts: [String: Double] = ["lock_timeout": 0], roleSettings: [RoleSetting] = []
    ) throws -> Exposition {
        let snapshot = ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [],
            databases: databases.map { DatabaseStats(datname: $0, deadlocks: 0) },
            settings: ServerSettings(versionString: "15.0", maxConnections: 100, timeouts: timeouts), roleSettings: roleSettings)
        var w = ExpositionWriter()
        SnapshotMetrics(snapshot: snapshot, graph: BlockingGraph(sessions: sessions), options: options).write(into: &w)
        return try Exposition(parsing: String(decoding: w.bytes, as: UTF8.self))
    }

    @Test func quietDatabaseGetsZeroFilledBlockingSeries() throws {
        let e = try render([])
        for db in ["app", "quiet"] {
            #expect(e.value("pg_blocked_sessions", ["datname": db]) == 0)
            #expect(e.value("pg_lock_wait_seconds_max", ["datname": db]) == 0)
            #expect(e.value("pg_blocking_chain_depth_max", ["datname": db]) == 0)
        }
        #expect(e.all("pg_blocking_root_blocked_sessions").isEmpty)
    }

    @Test func userApplicationPairsBeyondTheCapFoldIntoOther() throws {
        var sessions: [Session] = []
        var pid: Int32 = 1
        for (app, count) in [("big", 3), ("mid", 2), ("small1", 1), ("small2", 1)] {
            for _ in 0..<count {
                sessions.append(Session.fixture(pid: pid, applicationName: app, state: "idle"))
                pid += 1
            }
        }
        let e = try render(sessions, options: MetricOptions(maxUserApplicationPairs: 2))
        #expect(e.value("pg_sessions", ["application_name": "big", "state": "idle"]) == 3)
        #expect(e.value("pg_sessions", ["application_name": "mid", "state": "idle"]) == 2)
        #expect(e.value("pg_sessions", ["application_name": "other", "usename": "other", "state": "idle"]) == 2)
        #expect(e.all("pg_sessions", ["application_name": "small1"]).isEmpty)
        #expect(Set(e.all("pg_sessions").map { $0.labels["application_name"]! }) == ["big", "mid", "other"])
    }

    @Test func aRealOtherPairSharesTheFoldedSeries() throws {
        // Cap 2: "big" (3) and the real other/other (2) are kept; small1 and small2 fold into it.
        let sessions = [
            Session.fixture(pid: 1, applicationName: "big", state: "idle"), Session.fixture(pid: 2, applicationName: "big", state: "idle"),
            Session.fixture(pid: 3, applicationName: "big", state: "idle"),
            Session.fixture(pid: 4, usename: "other", applicationName: "other", state: "idle"),
            Session.fixture(pid: 5, usename: "other", applicationName: "other", state: "idle"),
            Session.fixture(pid: 6, applicationName: "small1", state: "idle"), Session.fixture(pid: 7, applicationName: "small2", state: "idle"),
        ]
        let e = try render(sessions, options: MetricOptions(maxUserApplicationPairs: 2))
        #expect(e.all("pg_sessions", ["usename": "other", "application_name": "other", "state": "idle"]).count == 1)
        #expect(e.value("pg_sessions", ["usename": "other", "application_name": "other", "state": "idle"]) == 4)
    }

    @Test func hiddenBackgroundProcessesAreNotClientSessions() throws {
        let checkpointer = Session.fixture(pid: 5, datname: nil, usename: nil, backendType: nil, state: nil, stateSeconds: nil)
        let e = try render([checkpointer])
        #expect(e.all("pg_sessions").isEmpty)
        #expect(e.all("pg_blocked_sessions", ["datname": ""]).isEmpty)
    }

    @Test func hiddenSessionsCountAsUnknownAndNonClientsAreLeftOut() throws {
        let hidden = Session.fixture(pid: 1, usename: "someone", backendType: nil, state: nil, stateSeconds: nil)
        let walsender = Session.fixture(pid: 2, backendType: "walsender", state: "active")
        let e = try render([hidden, walsender])
        #expect(e.value("pg_sessions", ["usename": "someone", "state": "unknown"]) == 1)
        #expect(e.all("pg_sessions").map(\.value).reduce(0, +) == 1)
    }

    @Test func idleInTransactionAgeIsTheOldestOfTheGroup() throws {
        let e = try render([
            Session.fixture(pid: 1, applicationName: "w", state: "idle in transaction", stateSeconds: 40, transactionSeconds: 90),
            Session.fixture(pid: 2, applicationName: "w", state: "idle in transaction (aborted)", stateSeconds: 70, transactionSeconds: 75),
            Session.fixture(pid: 3, applicationName: "x", state: "active", stateSeconds: 500, transactionSeconds: 500),
        ])
        #expect(e.value("pg_idle_in_transaction_seconds", ["application_name": "w"]) == 70)
        #expect(e.value("pg_idle_in_transaction_seconds", ["application_name": "x"]) == 0)
        #expect(e.value("pg_transaction_age_seconds_max", ["datname": "app", "state": "idle in transaction"]) == 90)
        #expect(e.value("pg_transaction_age_seconds_max", ["datname": "app", "state": "active"]) == 500)
    }

    @Test func topRootsAreCapped() throws {
        var sessions: [Session] = []
        for root in Int32(1)...4 {
            sessions.append(Session.fixture(pid: root, state: "idle in transaction", stateSeconds: Double(root)))
            for w in 0..<Int32(root) {
                sessions.append(Session.fixture(pid: root * 100 + w, state: "active", waitingOnLock: true, blockedBy: [root], lockWaitSeconds: 2))
            }
        }
        let e = try render(sessions, options: MetricOptions(topRoots: 2))
        let roots = e.all("pg_blocking_root_blocked_sessions")
        #expect(roots.map { $0.labels["pid"]! } == ["4", "3"])
        #expect(roots.map(\.value) == [4, 3])
        #expect(e.value("pg_blocking_root_sessions", ["datname": "app", "state": "idle in transaction"]) == 4)
        #expect(e.value("pg_blocked_sessions", ["datname": "app"]) == 10)
        #expect(e.value("pg_lock_wait_seconds_max", ["datname": "app"]) == 2)
    }

    /// Seven roots idle in transaction, top K 5: the per-pid series name five, the per-database
    /// gauges count all seven and carry the oldest, which ranks last (it blocks one session).
    @Test func idleInTransactionRootsAreCountedWhateverTheirRank() throws {
        var sessions: [Session] = []
        for root in Int32(1)...7 {
            let waiters = root == 7 ? 1 : Int(root) + 1
            sessions.append(Session.fixture(pid: root, state: "idle in transaction", stateSeconds: root == 7 ? 3600 : Double(root * 10)))
            for w in 0..<Int32(waiters) {
                sessions.append(Session.fixture(pid: root * 100 + w, state: "active", waitingOnLock: true, blockedBy: [root], lockWaitSeconds: 1))
            }
        }
        // An active root is not idle in transaction; the quiet database is 0-filled.
        sessions.append(Session.fixture(pid: 8, state: "active", stateSeconds: 9000))
        sessions.append(Session.fixture(pid: 801, state: "active", waitingOnLock: true, blockedBy: [8], lockWaitSeconds: 1))
        let e = try render(sessions)
        #expect(e.all("pg_blocking_root_state_seconds").count == 5)
        #expect(e.all("pg_blocking_root_state_seconds", ["pid": "7"]).isEmpty)
        #expect(e.value("pg_blocking_root_idle_in_transaction_sessions", ["datname": "app"]) == 7)
        #expect(e.value("pg_blocking_root_idle_in_transaction_seconds_max", ["datname": "app"]) == 3600)
        #expect(e.value("pg_blocking_root_idle_in_transaction_sessions", ["datname": "quiet"]) == 0)
        #expect(e.value("pg_blocking_root_idle_in_transaction_seconds_max", ["datname": "quiet"]) == 0)
    }

    @Test func roleSettingsPerDatabaseAndRoleWithSessions() throws {
        let name = "idle_in_transaction_session_timeout"
        let sessions = [
            Session.fixture(pid: 1, usename: "app"), Session.fixture(pid: 2, usename: "app"),
            Session.fixture(pid: 3, datname: "quiet", usename: "report"),
        ]
        let e = try render(
            sessions, timeouts: [name: 0, "lock_timeout": 0],
            roleSettings: [
                RoleSetting(datname: nil, rolname: "app", name: name, value: "30s"),
                RoleSetting(datname: nil, rolname: "nobody", name: name, value: "1min"),
            ])
        #expect(e.value("pg_role_setting_seconds", ["datname": "app", "usename": "app", "name": name]) == 30)
        #expect(e.value("pg_role_setting_seconds", ["datname": "app", "usename": "app", "name": "lock_timeout"]) == 0)
        #expect(e.value("pg_role_setting_seconds", ["datname": "quiet", "usename": "report", "name": name]) == 0)
        // Only pairs with client sessions: the role "nobody" has none.
        #expect(e.all("pg_role_setting_seconds").count == 4)
        #expect(e.value("pg_setting_seconds", ["name": name]) == 0)
    }

    @Test func rolesBeyondTheCapFoldIntoOtherWithTheWeakestGuard() throws {
        let name = "idle_in_transaction_session_timeout"
        var sessions: [Session] = []
        var pid: Int32 = 1
        for (role, count) in [("big", 3), ("mid", 2), ("guarded", 1), ("unguarded", 1)] {
            for _ in 0..<count {
                sessions.append(Session.fixture(pid: pid, usename: role))
                pid += 1
            }
        }
        let e = try render(
            sessions, options: MetricOptions(maxUserApplicationPairs: 2), timeouts: [name: 0],
            roleSettings: ["big", "mid", "guarded"].map { RoleSetting(datname: nil, rolname: $0, name: name, value: "1min") })
        #expect(Set(e.all("pg_role_setting_seconds").map { $0.labels["usename"]! }) == ["big", "mid", "other"])
        #expect(e.value("pg_role_setting_seconds", ["usename": "big", "name": name]) == 60)
        // "guarded" has one, "unguarded" none: the folded series says none.
        #expect(e.value("pg_role_setting_seconds", ["usename": "other", "name": name]) == 0)
    }
}
