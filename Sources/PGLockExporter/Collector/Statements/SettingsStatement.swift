/// The server's version, `max_connections` and the guard timeouts from `pg_settings` (with their
/// built-in defaults, see `GuardSettings`).
struct SettingsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_settings"

    let serverVersion: Int

    enum Column: Int, ResultColumn {
        case name, resetValue, bootValue
    }

    /// The settings reported by `pg_setting_seconds`, all in milliseconds on the server;
    /// `transaction_timeout` exists from PostgreSQL 17.
    var timeoutSettings: [String] {
        var names = ["idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout"]
        if serverVersion >= 170000 { names.append("transaction_timeout") }
        return names
    }

    /// `reset_val`, not `setting`: the exporter sets its own statement and lock timeouts, and the
    /// metric must show what other sessions get.
    var sql: String {
        let names = (["max_connections", "server_version"] + timeoutSettings).map { "'\($0)'" }.joined(separator: ", ")
        return "SELECT name, reset_val, boot_val FROM pg_settings WHERE name IN (\(names))"
    }

    func decode(_ r: borrowing PostgresResult) -> ServerSettings {
        var values: [String: String] = [:]
        var boot: [String: String] = [:]
        for row in 0..<r.rowCount {
            if let name = r.string(row, Column.name) {
                values[name] = r.string(row, Column.resetValue)
                boot[name] = r.string(row, Column.bootValue)
            }
        }
        var timeouts: [String: Double] = [:]
        var bootTimeouts: [String: Double] = [:]
        for name in timeoutSettings {
            timeouts[name] = (values[name].flatMap(Double.init) ?? 0) / 1000
            bootTimeouts[name] = (boot[name].flatMap(Double.init) ?? 0) / 1000
        }
        return ServerSettings(
            versionString: values["server_version"] ?? "",
            maxConnections: values["max_connections"].flatMap { Int($0) } ?? 0, timeouts: timeouts, bootTimeouts: bootTimeouts)
    }
}
