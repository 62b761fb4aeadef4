/// The guard timeouts as sessions get them at login, from the server's settings and the role and
/// database settings of `pg_db_role_setting` (docs/metrics.md, "Guard settings").
///
/// PostgreSQL applies, at login, the most specific setting there is: `ALTER ROLE r IN DATABASE d`,
/// then `ALTER ROLE r`, then `ALTER DATABASE d`, then `ALTER ROLE ALL`, then the server's own
/// value. `forSessions(datname:usename:)` resolves that order; `serverWide` is the last step.
/// Public only for its pure functions (`seconds(fromSetting:)` parses text from the server and is
/// a fuzzing entry point; `weakest`).
public struct GuardSettings {
    /// The setting names, sorted (those `SettingsStatement` reads for this server).
    let names: [String]
    /// Seconds, per name, for a session no role or database setting applies to (0 = disabled).
    let serverWide: [String: Double]
    private let overrides: [Scope: Double]

    private struct Scope: Hashable {
        var datname: String?
        var rolname: String?
        var name: String
    }

    init(settings: ServerSettings, roleSettings: [RoleSetting]) {
        names = settings.timeouts.keys.sorted()
        var overrides: [Scope: Double] = [:]
        for setting in roleSettings {
            // A value the server accepted always parses; anything else is skipped rather than
            // reported as a wrong number, and the next less specific setting applies.
            guard let seconds = Self.seconds(fromSetting: setting.value) else { continue }
            overrides[Scope(datname: setting.datname, rolname: setting.rolname, name: setting.name)] = seconds
        }
        self.overrides = overrides
        var serverWide: [String: Double] = [:]
        for name in names {
            // reset_val is what the exporter's session got at login: the server's value, unless
            // its own role or database sets this guard. Then the best server-wide value readable
            // without superuser rights is ALTER ROLE ALL's, else the built-in default
            // (pg_file_settings, which has the configuration file, is for superusers only). The
            // role settings are read at every scrape, the session's reset_val at its login: a
            // change to the exporter's own role shows correctly once it reconnects.
            let tainted = roleSettings.contains { $0.name == name && $0.appliesToExporter }
            serverWide[name] =
                tainted
                ? overrides[Scope(datname: nil, rolname: nil, name: name)] ?? settings.bootTimeouts[name] ?? 0
                : settings.timeouts[name] ?? 0
        }
        self.serverWide = serverWide
    }

    /// Seconds, per name, that a session of `usename` in `datname` gets at login.
    func forSessions(datname: String, usename: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for name in names {
            values[name] =
                overrides[Scope(datname: datname, rolname: usename, name: name)]
                ?? overrides[Scope(datname: nil, rolname: usename, name: name)]
                ?? overrides[Scope(datname: datname, rolname: nil, name: name)]
                ?? overrides[Scope(datname: nil, rolname: nil, name: name)]
                ?? serverWide[name] ?? 0
        }
        return values
    }

    /// The weaker of two values of one guard, for sessions of several roles reported as one
    /// (`pg_role_setting_seconds{usename="other"}`): the guard that lets a session go on longest.
    /// 0 (disabled) lets it go on forever, so it is the weakest of all; otherwise the larger timeout.
    public static func weakest(_ a: Double, _ b: Double) -> Double {
        a == 0 || b == 0 ? 0 : max(a, b)
    }

    /// A time setting as `pg_db_role_setting` stores it, in seconds: a number with an optional
    /// unit (`us`, `ms`, `s`, `min`, `h`, `d`; none means milliseconds, the unit of every guard),
    /// spaces allowed between them, rounded to whole milliseconds like the server does. nil for
    /// anything else, and for a value too large for a `Double` once converted (never infinity).
    public static func seconds(fromSetting text: String) -> Double? {
        let units: [String: Double] = ["us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000]
        let trimmed = text.drop(while: \.isWhitespace)
        let number = trimmed.prefix { $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E" }
        guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
        var unit = trimmed.dropFirst(number.count).drop(while: \.isWhitespace)
        while unit.last?.isWhitespace == true { unit = unit.dropLast() }
        guard let factor = unit.isEmpty ? 1 : units[String(unit)] else { return nil }
        let milliseconds = (value * factor).rounded(.toNearestOrEven)
        guard milliseconds.isFinite else { return nil }
        return milliseconds == 0 ? 0 : milliseconds / 1000  // -0 is 0
    }
}
