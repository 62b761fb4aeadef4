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

    @Test(arguments: ["", "s", "5 parsecs", "-1", "5m", "30 s s", "nan"])
    func settingTextThatIsNoTimeIsRefused(text: String) {
        #expect(GuardSettings.seconds(fromSetting: text) == nil)
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
