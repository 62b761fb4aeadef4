import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// `pg_role_setting_seconds{usename="other"}` against a real server: the roles the cap folds
    /// report the weakest guard among them (docs/metrics.md), the longest timeout, and 0 as soon
    /// as one of them has the guard switched off.
    @Suite struct GuardSettingsIntegrationTests {
        let cluster: TestCluster

        init() throws { cluster = try TestCluster.get() }

        @Test func theFoldedRolesReportTheirWeakestGuard() throws {
            let db = try cluster.createDatabase("folded")
            let admin = try cluster.connect()
            let suffix = db.split(separator: "_").last!
            let (kept, strict, lax) = ("kept_\(suffix)", "strict_\(suffix)", "lax_\(suffix)")
            let name = "idle_in_transaction_session_timeout"
            for (role, value) in [(kept, "5s"), (strict, "1min"), (lax, "10min")] {
                try admin.execute("CREATE ROLE \(role) LOGIN") { _ in }
                try admin.execute("ALTER ROLE \(role) IN DATABASE \(db) SET \(name) = '\(value)'") { _ in }
            }
            // The cap keeps one role per database: `kept` has the most sessions.
            func session(_ role: String) throws -> PostgresConnection {
                try PostgresConnection(ConnectionSettings(dsn: cluster.dsn(database: db, user: role), applicationName: "app"))
            }
            let sessions = try [kept, kept, kept, strict, lax].map(session)
            // What the sessions really got at login.
            #expect(try sessions[3].execute("SHOW \(name)") { $0.string(0, 0) } == "1min")
            #expect(try sessions[4].execute("SHOW \(name)") { $0.string(0, 0) } == "10min")

            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db), "--collector.max-user-app-pairs", "1"])
            func value(_ usename: String) throws -> Double? {
                try exporter.metrics().value("pg_role_setting_seconds", ["datname": db, "usename": usename, "name": name])
            }
            #expect(try value(kept) == 5)
            #expect(try value(strict) == nil)
            let folded = try value("other")
            #expect(folded == 600, "strict (60 s) and lax (600 s) folded: a lax session may idle 600 s")

            // Switched off for one folded role: the folded series says disabled.
            try admin.execute("ALTER ROLE \(strict) IN DATABASE \(db) SET \(name) = 0") { _ in }
            try eventually("the folded series to show the disabled guard") { try value("other") == 0 }
            withExtendedLifetime(sessions) {}
        }
    }
}
