import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// Behind a real PgBouncer (Debian's 1.18): the exporter, `check`, `remediate` and the
    /// episodes name the application client behind the pooler, and a pooler in trouble costs only
    /// its own names (issue 21).
    @Suite struct PgBouncerIntegrationTests {
        let cluster: TestCluster

        init() throws { cluster = try TestCluster.get() }

        /// The seed incident with the worker behind the pooler: the worker connects from
        /// 127.0.0.2 (a relay bound there, so the pooler sees an application host apart from its
        /// own 127.0.0.1), opens a transaction and reads `features`; the migration and two
        /// readers connect directly and queue behind it.
        final class PooledIncident {
            let database: String
            let bouncer: PgBouncerFixture
            let relay: PausableRelay
            let worker: PsqlSession
            let migration: PsqlSession
            let readers: [PsqlSession]
            let workerPID: Int32
            let migrationPID: Int32
            /// The worker's address and port as the pooler sees them.
            let workerPort: Int

            init(cluster: TestCluster, poolMode: String) throws {
                database = try cluster.createDatabase("pooled")
                let admin = try cluster.connect(database: database)
                try admin.execute("CREATE TABLE features (id int PRIMARY KEY, name text)") { _ in }
                try admin.execute("INSERT INTO features SELECT g, 'f' || g FROM generate_series(1, 10) g") { _ in }
                bouncer = try PgBouncerFixture(cluster: cluster, database: database, poolMode: poolMode)
                relay = try PausableRelay(to: bouncer.port, from: "127.0.0.2")
                worker = try PsqlSession(dsn: bouncer.appDSN(port: relay.port), applicationName: "worker")
                worker.send("BEGIN; SELECT * FROM features LIMIT 1;")
                workerPID = try Incident.waitFor(admin, "worker", state: "idle in transaction").first!
                workerPort = try #require(relay.outboundPorts.last)
                let direct = cluster.dsn(database: database)
                migration = try PsqlSession(dsn: direct, applicationName: "alembic")
                migration.send("ALTER TABLE features ADD COLUMN signature text;")
                migrationPID = try Incident.waitFor(admin, "alembic", waitingOnLock: true).first!
                readers = try (0..<2).map { _ in try PsqlSession(dsn: direct, applicationName: "web") }
                readers.forEach { $0.send("SELECT count(*) FROM features;") }
                _ = try Incident.waitFor(admin, "web", waitingOnLock: true, count: 2)
            }

            var poolerFlags: [String] {
                ["--pgbouncer.dsn", bouncer.adminDSN(), "--pgbouncer.password-file", bouncer.statsPasswordFile]
            }

            func end() {
                ([worker, migration] + readers).forEach { $0.kill() }
                relay.stop()
                bouncer.stop()
            }
        }

        func stateOf(_ pid: Int32) throws -> String? {
            try cluster.connect().execute("SELECT state FROM pg_stat_activity WHERE pid = $1::int", [String(pid)]) {
                $0.rowCount == 0 ? nil : $0.string(0, 0)
            }
        }

        /// A client of the pool that is not the worker: it runs a statement through the pooler and
        /// its answer must come back.
        func poolAnswers(_ bouncer: PgBouncerFixture, _ marker: String) throws -> Bool {
            let result = try Shell.run(["psql", "-X", "-A", "-t", "-c", "SELECT '\(marker)'", bouncer.appDSN() + " connect_timeout=5"], timeout: 20)
            return result.status == 0 && result.output.contains(marker)
        }

        @Test(arguments: ["session", "transaction"])
        func seedIncidentBehindPgBouncerNamesTheClientAndEndsOnlyItsTransaction(poolMode: String) throws {
            let incident = try PooledIncident(cluster: cluster, poolMode: poolMode)
            defer { incident.end() }
            let bouncer = incident.bouncer
            let h = incident.workerPID
            let expected = "client=127.0.0.2:\(incident.workerPort) via pgbouncer \(bouncer.name), client connected "
            // A second client of the same pool works before anything is done.
            #expect(try poolAnswers(bouncer, "before-\(poolMode)"))

            // The exporter: the root blocker's series name the client behind the pooler.
            let dsn = cluster.dsn(database: incident.database)
            let exporter = try ExporterProcess(["--dsn", dsn, "--sample.interval", "250ms"] + incident.poolerFlags)
            let metrics = try exporter.metrics()
            #expect(metrics.value("pg_pgbouncer_up", ["pgbouncer": bouncer.name]) == 1)
            #expect(metrics.value("pg_pgbouncer_clients_waiting", ["pgbouncer": bouncer.name, "database": "app"]) == 0)
            let root = try #require(metrics.all("pg_blocking_root_blocked_sessions", ["pid": String(h)]).first)
            #expect(root.value == 3)
            #expect(root.labels["pgbouncer_client"] == "127.0.0.2:\(incident.workerPort)")
            #expect(root.labels["client_addr"] == "127.0.0.1")
            #expect(root.labels["application_name"] == "worker")
            print("[pgbouncer \(poolMode)] root series: \(root.labels) = \(root.value)")

            // check, text and JSON.
            let text = try runCLI(["check", "--dsn", dsn, "--no-color"] + incident.poolerFlags)
            #expect(text.status == 0)
            let rootLine = try #require(text.output.split(separator: "\n").first { $0.hasPrefix("pid \(h)  idle in transaction ") })
            #expect(rootLine.contains("db=\(incident.database) user=postgres app=worker " + expected))
            print("[pgbouncer \(poolMode)] check: \(rootLine)")
            let json = try runCLI(["check", "--dsn", dsn, "--format", "json"] + incident.poolerFlags)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            let tree = try #require((object["blocking_trees"] as? [[String: Any]])?.first)
            #expect(tree["pid"] as? Int == Int(h))
            #expect(tree["blocked_count"] as? Int == 3)
            let client = try #require(tree["pgbouncer_client"] as? [String: Any])
            #expect(client["addr"] as? String == "127.0.0.2")
            #expect(client["port"] as? Int == incident.workerPort)
            #expect(client["pgbouncer"] as? String == bouncer.name)
            #expect(client["database"] as? String == "app")
            #expect(client["usename"] as? String == "postgres")
            #expect(client["application_name"] as? String == "worker")
            #expect((client["connect_time"] as? String)?.hasSuffix(" UTC") == true)
            // The migration and the readers connect directly: no pooler names them.
            #expect(((tree["blocked"] as? [[String: Any]])?.first?["pgbouncer_client"]) == nil)

            // remediate: the dry run names the client; --execute ends exactly that transaction.
            let dry = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"] + incident.poolerFlags)
            #expect(dry.output.contains("WOULD TERMINATE pid \(h) (db \(incident.database), user postgres, app worker, \(expected)"))
            let audit = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl").path
            defer { try? FileManager.default.removeItem(atPath: audit) }
            let run = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--audit-log", audit] + incident.poolerFlags)
            #expect(run.status == 0)
            #expect(run.output.contains("TERMINATED pid \(h) (db \(incident.database), user postgres, app worker, \(expected)"))
            print("[pgbouncer \(poolMode)] remediate: \(run.output.split(separator: "\n").first ?? "")")
            let entry = try #require(
                try JSONSerialization.jsonObject(with: Data(String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")[0].utf8))
                    as? [String: Any])
            let audited = try #require(entry["pgbouncer_client"] as? [String: Any])
            #expect(audited["addr"] as? String == "127.0.0.2")
            #expect(audited["port"] as? Int == incident.workerPort)

            // The ALTER completes, the readers return, and the pool serves its other clients and
            // new ones afterwards.
            try eventually("the migration and the readers to finish") {
                try stateOf(incident.migrationPID) == "idle"
            }
            let column = try cluster.connect(database: incident.database).execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'features' AND column_name = 'signature'"
            ) { $0.int(0, 0)! }
            #expect(column == 1)
            #expect(try poolAnswers(bouncer, "after-\(poolMode)"))
            let again = try PsqlSession(dsn: bouncer.appDSN(), applicationName: "newcomer")
            defer { again.kill() }
            again.send("SELECT 'newcomer-' || 'ok';")
            try eventually("a new client of the pool to get a server") { again.output.contains("newcomer-ok") }

            // The episode names the client too.
            var episode: EpisodeRecord?
            try eventually("the episode to end") {
                let reply = try exporter.get("/api/v1/episodes?datname=\(incident.database)")
                episode = try EpisodeAPIAnswer.records(status: reply.status, body: Array(reply.body.utf8), single: false).first
                return episode?.ongoing == false
            }
            #expect(episode?.root.pid == h)
            #expect(episode?.end == .rootEnded)
            #expect(episode?.root.pgbouncerClient?.addr == "127.0.0.2")
            #expect(episode?.root.pgbouncerClient?.port == incident.workerPort)
            #expect(episode?.root.pgbouncerClient?.pgbouncer == bouncer.name)
            print("[pgbouncer \(poolMode)] episode \(episode?.id ?? ""): root \(episode?.root.pid ?? 0), client \(episode?.root.pgbouncerClient?.endpoint ?? "none"), end \(episode?.end?.rawValue ?? "")")
            #expect(try exporter.terminate() == 0)
        }

        @Test func twoPoolersInFrontOfOneServerEachNameTheirOwnClient() throws {
            let database = try cluster.createDatabase("twopools")
            let first = try PgBouncerFixture(cluster: cluster, database: database)
            let second = try PgBouncerFixture(cluster: cluster, database: database)
            defer {
                first.stop()
                second.stop()
            }
            let relayA = try PausableRelay(to: first.port, from: "127.0.0.2")
            let relayB = try PausableRelay(to: second.port, from: "127.0.0.3")
            defer {
                relayA.stop()
                relayB.stop()
            }
            let a = try PsqlSession(dsn: first.appDSN(port: relayA.port), applicationName: "host_a")
            let b = try PsqlSession(dsn: second.appDSN(port: relayB.port), applicationName: "host_b")
            defer {
                a.kill()
                b.kill()
            }
            a.send("BEGIN; SELECT 1;")
            b.send("BEGIN; SELECT 2;")
            let admin = try cluster.connect(database: database)
            let pidA = try Incident.waitFor(admin, "host_a", state: "idle in transaction").first!
            let pidB = try Incident.waitFor(admin, "host_b", state: "idle in transaction").first!
            let json = try runCLI([
                "check", "--dsn", cluster.dsn(database: database), "--format", "json", "--pgbouncer.dsn", first.adminDSN(),
                "--pgbouncer.dsn", second.adminDSN(), "--pgbouncer.password-file", first.statsPasswordFile,
            ])
            #expect(json.status == 0)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            let sessions = try #require(object["sessions"] as? [[String: Any]])
            func client(_ pid: Int32) -> [String: Any]? {
                sessions.first { $0["pid"] as? Int == Int(pid) }?["pgbouncer_client"] as? [String: Any]
            }
            #expect(client(pidA)?["pgbouncer"] as? String == first.name)
            #expect(client(pidA)?["addr"] as? String == "127.0.0.2")
            #expect(client(pidA)?["port"] as? Int == relayA.outboundPorts.last)
            #expect(client(pidB)?["pgbouncer"] as? String == second.name)
            #expect(client(pidB)?["addr"] as? String == "127.0.0.3")
            #expect(client(pidB)?["port"] as? Int == relayB.outboundPorts.last)
            print("[pgbouncer two poolers] \(pidA) -> \(client(pidA) ?? [:]); \(pidB) -> \(client(pidB) ?? [:])")
        }

        /// A pooler that is stopped, killed, or refuses the credentials costs only its own
        /// names: each scrape still says `pg_up 1` within `--pgbouncer.timeout`, the pooler's
        /// `pg_pgbouncer_up` is 0, and one line in the log says why, without the password.
        @Test func aPoolerInTroubleNeverHidesTheDatabase() throws {
            let incident = try PooledIncident(cluster: cluster, poolMode: "session")
            defer { incident.end() }
            let bouncer = incident.bouncer
            let dsn = cluster.dsn(database: incident.database)
            let exporter = try ExporterProcess(
                ["--dsn", dsn, "--sample.interval", "0", "--pgbouncer.timeout", "1s"] + incident.poolerFlags)
            func scrape(_ label: String) throws -> (Exposition, Double) {
                let started = Date()
                let metrics = try exporter.metrics()
                let seconds = Date().timeIntervalSince(started)
                print("[pgbouncer fault] \(label): pg_up \(metrics.value("pg_up") ?? -1), pg_pgbouncer_up \(metrics.value("pg_pgbouncer_up") ?? -1), scrape \(String(format: "%.3f", seconds)) s")
                return (metrics, seconds)
            }
            func rootClient(_ metrics: Exposition) -> String? {
                metrics.all("pg_blocking_root_blocked_sessions", ["pid": String(incident.workerPID)]).first?.labels["pgbouncer_client"]
            }
            let (healthy, _) = try scrape("healthy")
            #expect(healthy.value("pg_pgbouncer_up") == 1)
            #expect(rootClient(healthy) == "127.0.0.2:\(incident.workerPort)")

            // SIGSTOP: the read ends at --pgbouncer.timeout; PostgreSQL is still read.
            bouncer.pause()
            // The harm the bound prevents: a reader without one (psql, no connect_timeout) is
            // still waiting on the stopped pooler 3 s later.
            #expect(throws: TestFailure.self) {
                try Shell.run(["psql", "-X", "-c", "SHOW CLIENTS", bouncer.adminDSN() + " password=\(PgBouncerFixture.statsPassword)"], timeout: 3)
            }
            let (stopped, stoppedSeconds) = try scrape("SIGSTOP")
            #expect(stopped.value("pg_up") == 1)
            #expect(stopped.value("pg_pgbouncer_up", ["pgbouncer": bouncer.name]) == 0)
            #expect(rootClient(stopped) == "")
            #expect(stopped.value("pg_blocking_root_blocked_sessions", ["pid": String(incident.workerPID)]) == 3)
            #expect(stoppedSeconds < 2.5)
            let (stillStopped, _) = try scrape("SIGSTOP, second scrape")
            #expect(stillStopped.value("pg_pgbouncer_up") == 0)
            #expect(exporter.log.components(separatedBy: "cannot read PgBouncer").count - 1 == 1)
            bouncer.resume()
            try eventually("the pooler to be read again") { try exporter.metrics().value("pg_pgbouncer_up") == 1 }
            #expect(exporter.log.contains("PgBouncer readable again"))

            // Killed: its port refuses at once.
            bouncer.kill9()
            let (killed, killedSeconds) = try scrape("SIGKILL")
            #expect(killed.value("pg_up") == 1)
            #expect(killed.value("pg_pgbouncer_up") == 0)
            #expect(killedSeconds < 2.5)
            let (refused, refusedSeconds) = try scrape("SIGKILL, second scrape")
            #expect(refused.value("pg_up") == 1)
            #expect(refused.value("pg_pgbouncer_up") == 0)
            #expect(refusedSeconds < 2.5)
            // Down, up, down again: two lines, each with PgBouncer's or the kernel's reason.
            let down = exporter.log.split(separator: "\n").filter { $0.contains("cannot read PgBouncer") }
            #expect(down.count == 2)
            print("[pgbouncer fault] log: \(down.joined(separator: " | "))")
            #expect(try exporter.terminate() == 0)
        }

        @Test func wrongCredentialsOrNoStatsRightsAreOneLineAndNeverThePassword() throws {
            let database = try cluster.createDatabase("poolauth")
            let bouncer = try PgBouncerFixture(cluster: cluster, database: database)
            defer { bouncer.stop() }
            let wrong = bouncer.directory + "/wrong.pw"
            try "hunter2-wrong\n".write(toFile: wrong, atomically: true, encoding: .utf8)
            let nobody = bouncer.directory + "/nobody.pw"
            try "nobody-secret\n".write(toFile: nobody, atomically: true, encoding: .utf8)
            for (user, file, reason) in [
                ("pgb_stats", wrong, "password authentication failed"), ("pgb_nobody", nobody, "not allowed"),
            ] {
                let exporter = try ExporterProcess([
                    "--dsn", cluster.dsn(database: database), "--sample.interval", "0", "--pgbouncer.dsn", bouncer.adminDSN(user: user),
                    "--pgbouncer.password-file", file,
                ])
                let metrics = try exporter.metrics()
                #expect(metrics.value("pg_up") == 1)
                #expect(metrics.value("pg_pgbouncer_up", ["pgbouncer": bouncer.name]) == 0)
                _ = try exporter.metrics()
                let lines = exporter.log.split(separator: "\n").filter { $0.contains("cannot read PgBouncer") }
                #expect(lines.count == 1)
                #expect(lines.first?.contains(reason) == true)
                #expect(!exporter.log.contains("hunter2") && !exporter.log.contains("nobody-secret"))
                print("[pgbouncer auth] \(user): \(lines.first ?? "")")
                #expect(try exporter.terminate() == 0)
                // check says the same in one warning line and still draws the database.
                let check = try runCLI([
                    "check", "--dsn", cluster.dsn(database: database), "--pgbouncer.dsn", bouncer.adminDSN(user: user),
                    "--pgbouncer.password-file", file,
                ])
                #expect(check.status == 0)
                #expect(check.output.contains("warning: cannot read PgBouncer \(bouncer.name): "))
                #expect(check.output.contains(reason))
                #expect(!check.output.contains("hunter2") && !check.output.contains("nobody-secret"))
            }
        }

        @Test func badPoolerFlagsAreOneLine() throws {
            let cases: [([String], String)] = [
                (["--pgbouncer.dsn", "host=127.0.0.1 port=6432 dbname=app"], "--pgbouncer.dsn (#1): a pooler's DSN names its admin console: dbname=pgbouncer"),
                (["--pgbouncer.dsn", "host=127.0.0.1 dbname=pgbouncer password=s3cret"], "--pgbouncer.dsn (#1): put the pooler's password in a password file or the environment, not in its DSN"),
                (["--pgbouncer.dsn", "host=a,b dbname=pgbouncer"], "--pgbouncer.dsn (#1): a pooler's DSN names one pooler: one host and one port"),
                (["--pgbouncer.dsn", "host=p port=1 dbname=pgbouncer", "--pgbouncer.dsn", "port=1 host=p dbname=pgbouncer"], "--pgbouncer.dsn (#2): p:1 is named twice"),
                (["--pgbouncer.dsn", "host=p dbname=pgbouncer", "--pgbouncer.timeout", "1ms"], "--pgbouncer.timeout: at least 100ms"),
                (["--pgbouncer.dsn", "host=p dbname=pgbouncer", "--pgbouncer.password-file", "/nonexistent/pw"], "--pgbouncer.password-file"),
            ]
            for (flags, message) in cases {
                for command in [["check"], ["remediate"], ["serve", "--web.listen-address", "127.0.0.1:0"]] {
                    let result = try runCLI(command + ["--dsn", cluster.dsn()] + flags)
                    #expect(result.status != 0, "\(command) \(flags)")
                    #expect(result.output.contains(message), "\(command) \(flags): \(result.output)")
                    #expect(!result.output.contains("s3cret"))
                }
            }
        }
    }
}
