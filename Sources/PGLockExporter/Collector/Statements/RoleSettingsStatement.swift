/// The guard settings that roles and databases set for themselves (`ALTER ROLE ... SET`,
/// `ALTER DATABASE ... SET`, `ALTER ROLE ... IN DATABASE ... SET`), from `pg_db_role_setting`,
/// which every role may read. A handful of rows: the exporter reads it at every scrape, so a
/// change shows at once (`pg_settings`, costlier, is read once a minute).
struct RoleSettingsStatement: SnapshotStatement {
    static let preparedName = "pg_lock_exporter_role_settings"

    let serverVersion: Int

    enum Column: Int, ResultColumn {
        case datname, rolname, name, value, appliesToUs
    }

    /// `appliesToUs`: the setting is one the exporter's own session got at login from its role or
    /// database, so its `pg_settings.reset_val` is not the server-wide value (`ALTER ROLE ALL`,
    /// database and role both 0, applies to every session and so counts as server-wide).
    var sql: String {
        let names = SettingsStatement(serverVersion: serverVersion).timeoutSettings.map { "'\($0)'" }.joined(separator: ", ")
        return """
            SELECT d.datname, r.rolname, c.name, c.value,
                   (s.setrole = 0 OR r.rolname = session_user) AND (s.setdatabase = 0 OR d.datname = current_database())
                       AND NOT (s.setrole = 0 AND s.setdatabase = 0)
            FROM pg_db_role_setting s
            LEFT JOIN pg_database d ON d.oid = s.setdatabase
            LEFT JOIN pg_roles r ON r.oid = s.setrole
            CROSS JOIN LATERAL (
                SELECT lower(split_part(setting, '=', 1)) AS name, substr(setting, strpos(setting, '=') + 1) AS value
                FROM unnest(s.setconfig) AS setting) c
            WHERE c.name IN (\(names))
            """
    }

    func decode(_ r: borrowing PostgresResult) -> [RoleSetting] {
        (0..<r.rowCount).compactMap { row in
            guard let name = r.string(row, Column.name), let value = r.string(row, Column.value) else { return nil }
            return RoleSetting(
                datname: r.string(row, Column.datname), rolname: r.string(row, Column.rolname), name: name, value: value,
                appliesToExporter: r.bool(row, Column.appliesToUs) ?? false)
        }
    }
}
