import Testing

@testable import PGLockExporter

@Suite struct GuardSettingsTests {
    static let names = ["idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout"]

    func settings(reset: [String: Double] = [:], boot: [String: Double] = [:]) -> ServerSettings {
        ServerSettings(
            versionString: "15.0", maxConnections: 100,
            timeouts: Dictionary(uniqueKeysWithValues: Self.names.map { ($0, reset[$0] ?? 0) }),
            bootTimeouts: Dictionary(uniqueKeysWithValues: Self.names.map { ($0, boot[$0] ?? 0) }))
    }

    @Test(arguments: [
        ("30s", 30.0), ("5min", 300), ("5 min", 300), ("1h", 3600), ("2d", 172_800), ("250ms", 0.25), ("1500", 1.5),
        ("0", 0), ("1500.5", 1.5), ("1500us", 0.002), (" 45s ", 45),
    ])
    func settingTextToSeconds(text: String, seconds: Double) {
        #expect(GuardSettings.seconds(fromSetting: text) == seconds)
    }

    @Test(arguments: ["", "s", "5 parsecs", "-1", "5m", "30 s s", "nan", "1e305d", "1e400", "inf", "1e308 h"])
    func settingTextThatIsNoTimeIsRefused(text: String) {
        #expect(GuardSettings.seconds(fromSetting: text) == nil)
    }

    /// A negative zero is still 0 (disabled), never "-0" in the exposition.
    @Test func negativeZeroIsZero() {
        let seconds = GuardSettings.seconds(fromSetting: "-0")
        #expect(seconds == 0)
        #expect(seconds?.sign == .plus)
    }

    @Test func theMostSpecificSettingWinsAsAtLogin() {
        let name = "idle_in_transaction_session_timeout"
        let guards = GuardSettings(
            settings: settings(reset: [name: 600]),
            roleSettings: [
                RoleSetting(datname: "shop", rolname: "app", name: name, value: "10s"),
                RoleSetting(datname: nil, rolname: "app", name: name, value: "20s"),
                RoleSetting(datname: "shop", rolname: nil, name: name, value: "30s"),
                RoleSetting(datname: nil, rolname: "report", name: name, value: "0"),
            ])
        #expect(guards.forSessions(datname: "shop", usename: "app")[name] == 10)  // ALTER ROLE app IN DATABASE shop
        #expect(guards.forSessions(datname: "crm", usename: "app")[name] == 20)  // ALTER ROLE app
        #expect(guards.forSessions(datname: "shop", usename: "etl")[name] == 30)  // ALTER DATABASE shop
        #expect(guards.forSessions(datname: "shop", usename: "report")[name] == 0)  // switched off for the role
        #expect(guards.forSessions(datname: "crm", usename: "etl")[name] == 600)  // the server's
        #expect(guards.forSessions(datname: "crm", usename: "etl")["lock_timeout"] == 0)
        #expect(guards.serverWide[name] == 600)
    }

    @Test func theServerWideValueIsFreeOfTheExportersOwnOverrides() {
        // reset_val shows what the exporter's session got at login: 45s from its own role, which
        // no application session gets. Without ALTER ROLE ALL, the built-in default is reported.
        let name = "idle_in_transaction_session_timeout"
        let own = RoleSetting(datname: nil, rolname: "lock_monitor", name: name, value: "45s", appliesToExporter: true)
        let tainted = GuardSettings(settings: settings(reset: [name: 45, "lock_timeout": 7]), roleSettings: [own])
        #expect(tainted.serverWide[name] == 0)
        #expect(tainted.serverWide["lock_timeout"] == 7)  // not overridden: reset_val as read
        #expect(tainted.forSessions(datname: "shop", usename: "app")[name] == 0)
        #expect(tainted.forSessions(datname: "postgres", usename: "lock_monitor")[name] == 45)
        // ALTER ROLE ALL applies to every session, so it is the server-wide value then.
        let all = RoleSetting(datname: nil, rolname: nil, name: name, value: "2min")
        let withAll = GuardSettings(settings: settings(reset: [name: 45]), roleSettings: [own, all])
        #expect(withAll.serverWide[name] == 120)
        #expect(withAll.forSessions(datname: "shop", usename: "app")[name] == 120)
    }

    @Test func anUnparsableOverrideFallsBackToTheNextLessSpecific() {
        let name = "lock_timeout"
        let guards = GuardSettings(
            settings: settings(reset: [name: 5]),
            roleSettings: [RoleSetting(datname: nil, rolname: "app", name: name, value: "soon")])
        #expect(guards.forSessions(datname: "shop", usename: "app")[name] == 5)
    }
}

/// `pg_role_setting_seconds{usename="other"}`: the roles folded by the cap report the weakest
/// guard among them, so the folded series never looks safer than one of its roles.
@Suite struct GuardSettingsFoldingTests {
    static let name = "idle_in_transaction_session_timeout"

    /// The exposition of one database whose sessions are one per role, with the cap at one role:
    /// the first role keeps its series, every other folds into `other`.
    func foldedValue(_ roles: [(role: String, setting: String?)]) throws -> Double? {
        var sessions: [Session] = []
        for (index, entry) in roles.enumerated() {
            // The first role has the most sessions, so it is the one the cap keeps.
            for _ in 0..<(index == 0 ? 3 : 1) {
                sessions.append(Session.fixture(pid: Int32(sessions.count + 1), usename: entry.role))
            }
        }
        let snapshot = ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [DatabaseStats(datname: "app", deadlocks: 0)],
            settings: ServerSettings(versionString: "15.0", maxConnections: 100, timeouts: [Self.name: 0]),
            roleSettings: roles.compactMap { entry in
                entry.setting.map { RoleSetting(datname: nil, rolname: entry.role, name: Self.name, value: $0) }
            })
        var w = ExpositionWriter()
        SnapshotMetrics(snapshot: snapshot, graph: BlockingGraph(sessions: sessions), options: MetricOptions(maxUserApplicationPairs: 1))
            .write(into: &w)
        let e = try Exposition(parsing: String(decoding: w.bytes, as: UTF8.self))
        return e.value("pg_role_setting_seconds", ["datname": "app", "usename": "other", "name": Self.name])
    }

    @Test func theLongestTimeoutAmongTheFoldedRolesIsReported() throws {
        // 1 min and 10 min folded: a session of the second role may idle for 10 min.
        let laxLast = try foldedValue([("kept", "5s"), ("strict", "1min"), ("lax", "10min")])
        let laxFirst = try foldedValue([("kept", "5s"), ("lax", "10min"), ("strict", "1min")])
        #expect(laxLast == 600)
        #expect(laxFirst == 600)
    }

    @Test func aDisabledGuardAmongTheFoldedRolesIsReportedAsZero() throws {
        // No setting and the server's 0: disabled, weaker than any timeout.
        let unset = try foldedValue([("kept", "5s"), ("lax", "10min"), ("unguarded", nil)])
        let switchedOff = try foldedValue([("kept", "5s"), ("off", "0"), ("strict", "1min")])
        #expect(unset == 0)
        #expect(switchedOff == 0)
    }

    @Test(arguments: [
        (0.0, 30.0, 0.0), (30, 0, 0), (0, 0, 0), (30, 600, 600), (600, 30, 600), (0.25, 0.25, 0.25),
    ])
    func weakestOfTwoGuards(a: Double, b: Double, weakest: Double) {
        #expect(GuardSettings.weakest(a, b) == weakest)
    }
}
