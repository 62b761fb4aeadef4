import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// The version-specific SQL paths of `SnapshotQuery`, each asserted on the server it runs
    /// against: the test reads the running server's version and checks the branch that version
    /// must take. Run the suite once per server (`make test-versions`, `scripts/pg-versions`) to
    /// cover every branch.
    @Suite struct ServerVersionTests {
        let cluster: TestCluster
        /// `server_version_num` of the running server, e.g. 180006.
        let version: Int

        init() throws {
            cluster = try TestCluster.get()
            version = try cluster.connect().execute("SHOW server_version_num") { Int($0.string(0, 0)!)! }
        }

        var major: Int { version / 10000 }

        /// The cluster is the server PG_BINDIR (or pg-sandbox's default) names, so a run meant for
        /// one version never passes on another.
        @Test func theServerIsTheOneTheBinDirNames() throws {
            let result = try Shell.run(["\(cluster.bindir)/postgres", "--version"])
            #expect(result.status == 0)
            // "postgres (PostgreSQL) 18.6", "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            let match = try #require(result.output.firstMatch(of: /\(PostgreSQL\) (\d+)/), "\(cluster.bindir): \(result.output)")
            #expect(Int(match.1) == major, "\(cluster.bindir): \(result.output)")

            let exporter = try ExporterProcess(["--dsn", cluster.dsn()])
            let metrics = try exporter.metrics()
            let shown = try cluster.connect().execute("SHOW server_version") { $0.string(0, 0)! }
            #expect(metrics.value("pg_server_info", ["version": shown]) == 1)
            #expect(metrics.all("pg_server_info").count == 1)
        }

        /// `pg_role_setting_seconds` reports what the sessions of a role in a database get at login,
        /// `pg_setting_seconds` the server-wide value, free of the settings of the exporter's own
        /// database (here the same database), and `transaction_timeout` only where it exists
        /// (PostgreSQL 17+).
        @Test func timeoutSettingsFollowTheServerVersion() throws {
            let db = try cluster.createDatabase("settings")
            let admin = try cluster.connect()
            try admin.execute("ALTER DATABASE \(db) SET idle_in_transaction_session_timeout = '90s'") { _ in }
            try admin.execute("ALTER DATABASE \(db) SET lock_timeout = '3s'") { _ in }
            try admin.execute("ALTER DATABASE \(db) SET statement_timeout = '45s'") { _ in }
            let hasTransactionTimeout = try admin.execute("SELECT count(*) FROM pg_settings WHERE name = 'transaction_timeout'") {
                $0.int(0, 0)! == 1
            }
            #expect(hasTransactionTimeout == (version >= 170000), "server \(version)")
            if version >= 170000 {
                try admin.execute("ALTER DATABASE \(db) SET transaction_timeout = '7min'") { _ in }
            } else {
                // The server really lacks it: the exporter is right to leave it out.
                let error = #expect(throws: PostgresError.self) {
                    try admin.execute("ALTER DATABASE \(db) SET transaction_timeout = '7min'") { _ in }
                }
                #expect(error?.sqlState == "42704", "unrecognized configuration parameter: \(String(describing: error))")
            }

            // A client session in the database (user postgres, as the exporter's own).
            let session = try cluster.connect(database: db)
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db)])
            let metrics = try exporter.metrics()
            func resetValues(_ connection: PostgresConnection) throws -> [String: Double] {
                var values: [String: Double] = [:]
                try connection.execute(
                    """
                    SELECT name, reset_val::float8 / 1000 FROM pg_settings
                    WHERE name IN ('idle_in_transaction_session_timeout', 'lock_timeout', 'statement_timeout', 'transaction_timeout')
                    """
                ) { r in
                    for row in 0..<r.rowCount { values[r.string(row, 0)!] = r.double(row, 1)! }
                }
                return values
            }
            // What the session in the database got at login, and what one elsewhere gets.
            let inDatabase = try resetValues(session)
            let elsewhere = try resetValues(try cluster.connect())
            let perRole = Dictionary(
                uniqueKeysWithValues: metrics.all("pg_role_setting_seconds", ["datname": db, "usename": "postgres"]).map {
                    ($0.labels["name"]!, $0.value)
                })
            #expect(perRole == inDatabase)
            #expect(perRole["idle_in_transaction_session_timeout"] == 90)
            #expect(perRole["lock_timeout"] == 3)
            #expect(perRole["statement_timeout"] == 45)
            let serverWide = Dictionary(uniqueKeysWithValues: metrics.all("pg_setting_seconds").map { ($0.labels["name"]!, $0.value) })
            #expect(serverWide == elsewhere)
            #expect(serverWide["idle_in_transaction_session_timeout"] == 0)
            if version >= 170000 {
                #expect(try session.execute("SHOW transaction_timeout") { $0.string(0, 0) } == "7min")
                #expect(perRole["transaction_timeout"] == 420)
                #expect(serverWide["transaction_timeout"] == 0)
            } else {
                #expect(metrics.all("pg_setting_seconds", ["name": "transaction_timeout"]).isEmpty)
                #expect(metrics.all("pg_role_setting_seconds", ["name": "transaction_timeout"]).isEmpty)
                #expect(serverWide.count == 3)
            }
        }

        /// `pg_stat_database` session counters (PostgreSQL 14+): a `pg_terminate_backend` counts
        /// as killed, a client that vanished as abandoned. Before 14 the families are absent.
        @Test func sessionCountersFollowTheServerVersion() throws {
            let db = try cluster.createDatabase("sessions")
            let admin = try cluster.connect(database: db)
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db)])
            let before = try exporter.metrics()
            let families = [
                "pg_database_sessions_killed_total", "pg_database_sessions_abandoned_total",
                "pg_database_idle_in_transaction_seconds_total",
            ]
            guard version >= 140000 else {
                for family in families { #expect(before.all(family).isEmpty, "\(family) on server \(version)") }
                return
            }
            for family in families { #expect(before.value(family, ["datname": db]) == 0, "\(family) of a new database") }

            let victim = try PsqlSession(dsn: cluster.dsn(database: db), applicationName: "victim")
            defer { victim.kill() }
            victim.send("BEGIN; SELECT 1;")
            let victimPID = try #require(try Incident.waitFor(admin, "victim", state: "idle in transaction").first)
            usleep(300_000)  // idle in transaction for a while; the server counts it when the state ends
            victim.send("COMMIT;")
            _ = try Incident.waitFor(admin, "victim", state: "idle")
            let gone = try PsqlSession(dsn: cluster.dsn(database: db), applicationName: "gone")
            defer { gone.kill() }
            gone.send("SELECT 1;")
            _ = try Incident.waitFor(admin, "gone", state: "idle")

            #expect(try admin.execute("SELECT pg_terminate_backend($1::int)", [String(victimPID)]) { $0.bool(0, 0) } == true)
            gone.kill()  // SIGKILL: the server sees the client vanish without a goodbye
            var after = before
            try eventually("the session counters to count the two sessions") {
                after = try exporter.metrics()
                return after.value("pg_database_sessions_killed_total", ["datname": db]) == 1
                    && after.value("pg_database_sessions_abandoned_total", ["datname": db]) == 1
            }
            let idle = try #require(after.value("pg_database_idle_in_transaction_seconds_total", ["datname": db]))
            #expect(idle >= 0.25)
            let (killed, abandoned) = try admin.execute(
                "SELECT sessions_killed, sessions_abandoned FROM pg_stat_database WHERE datname = current_database()"
            ) { ($0.int(0, 0)!, $0.int(0, 1)!) }
            #expect(killed == 1)
            #expect(abandoned == 1)
        }

        /// `pg_lock_wait_seconds_max` times the lock wait itself from `pg_locks.waitstart`
        /// (PostgreSQL 14+), not the statement: a statement that sleeps before it queues for the
        /// lock tells the two apart. Before 14 it is the time since the waiter's state_change.
        @Test func lockWaitIsTimedFromWaitStartWhereTheServerHasIt() throws {
            let db = try cluster.createDatabase("waitstart")
            let admin = try cluster.connect(database: db)
            try admin.execute("CREATE TABLE accounts (id int PRIMARY KEY)") { _ in }
            let holder = try PsqlSession(dsn: cluster.dsn(database: db), applicationName: "holder")
            defer { holder.kill() }
            holder.send("BEGIN; SELECT * FROM accounts;")
            _ = try Incident.waitFor(admin, "holder", state: "idle in transaction")
            // One statement: 2 s of sleep (active since state_change), then the lock wait (waitstart).
            let waiter = try PsqlSession(dsn: cluster.dsn(database: db), applicationName: "waiter")
            defer { waiter.kill() }
            waiter.send("DO $$ BEGIN PERFORM pg_sleep(2); LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; END $$;")
            let waiterPID = try #require(try Incident.waitFor(admin, "waiter", waitingOnLock: true).first)

            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db)])
            let metrics = try exporter.metrics()
            let scraped = try #require(metrics.value("pg_lock_wait_seconds_max", ["datname": db]))
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 1)
            let waitStart = version >= 140000 ? "min(l.waitstart)" : "NULL::timestamptz"
            let (stateAge, waitAge) = try admin.execute(
                """
                SELECT extract(epoch FROM now() - a.state_change)::float8,
                       (SELECT extract(epoch FROM now() - \(waitStart))::float8 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)
                FROM pg_stat_activity a WHERE a.pid = $1::int
                """, [String(waiterPID)]
            ) { ($0.double(0, 0)!, $0.double(0, 1)) }
            if version >= 140000 {
                let waitAge = try #require(waitAge)
                #expect(stateAge - waitAge > 1.5, "the statement slept 2 s before it queued")
                #expect(scraped > 0 && scraped <= waitAge && waitAge - scraped < 1, "scraped \(scraped), waitstart age \(waitAge)")
            } else {
                #expect(scraped <= stateAge && stateAge - scraped < 1, "scraped \(scraped), state_change age \(stateAge)")
                #expect(scraped > 1.5)
            }
        }
    }
}
