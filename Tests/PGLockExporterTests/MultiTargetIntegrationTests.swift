import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// `--config.file` targets behind `/probe`, and the background sampler.
    @Suite struct MultiTargetIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        func configFile(_ yaml: String) throws -> String {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID().uuidString).yml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// Lets role `secretive` in only over TCP with its password (the sandbox trusts everyone else).
        func requirePassword(for role: String, password: String) throws {
            let admin = try cluster.connect()
            try admin.execute("DROP ROLE IF EXISTS \(role)") { _ in }
            try admin.execute("CREATE ROLE \(role) LOGIN IN ROLE pg_monitor PASSWORD '\(password)'") { _ in }
            let hba = "\(cluster.directory)/data/pg_hba.conf"
            let current = try String(contentsOfFile: hba, encoding: .utf8)
            let rule = "host all \(role) 127.0.0.1/32 scram-sha-256\n"
            if !current.hasPrefix(rule) { try (rule + current).write(toFile: hba, atomically: false, encoding: .utf8) }
            try admin.execute("SELECT pg_reload_conf()") { _ in }
            usleep(300_000)
        }

        @Test func probesNamedTargetsWithPasswordsFromFileAndEnvironment() throws {
            let dbA = try cluster.createDatabase("ta"), dbB = try cluster.createDatabase("tb")
            let password = "pw-\(UUID().uuidString)"
            try requirePassword(for: "secretive", password: password)
            let passwordFile = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID().uuidString)").path
            try (password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
            let tcp = "host=127.0.0.1 port=\(cluster.port) user=secretive"
            let config = try configFile(
                """
                targets:
                  alpha:
                    dsn: "\(tcp) dbname=\(dbA)"
                    password_file: \(passwordFile)
                  beta:
                    dsn: "\(tcp) dbname=\(dbB)"
                    password_env: BETA_PASSWORD
                  nopassword:
                    dsn: "\(tcp) dbname=\(dbB)"
                """)
            let exporter = try ExporterProcess(["--config.file", config], environment: ["BETA_PASSWORD": password])
            let alpha = try Exposition(parsing: try exporter.get("/probe?target=alpha").body)
            #expect(alpha.value("pg_up") == 1)
            #expect(alpha.value("pg_blocked_sessions", ["datname": dbA]) == 0)
            #expect(alpha.all("process_cpu_seconds_total").isEmpty)
            // Every /probe body names the exporter, so the alerting rules recognise its pg_up.
            #expect(alpha.value("pg_lock_exporter_build_info", ["version": BuildInfo.version]) == 1)
            #expect(try Exposition(parsing: try exporter.get("/probe?target=beta").body).value("pg_up") == 1)
            let down = try Exposition(parsing: try exporter.get("/probe?target=nopassword").body)
            #expect(down.value("pg_up") == 0)
            #expect(down.value("pg_lock_exporter_build_info", ["version": BuildInfo.version]) == 1)
            let unknown = try exporter.get("/probe?target=gamma")
            #expect(unknown.status == 400)
            #expect(unknown.body == "unknown target \"gamma\"; known: alpha, beta, nopassword\n")
            #expect(try exporter.get("/probe").status == 400)
            let own = try Exposition(parsing: try exporter.get("/metrics").body)
            #expect(own.value("pg_lock_exporter_build_info", ["version": BuildInfo.version]) == 1)
            #expect(own.all("pg_up").isEmpty)
            let landing = try exporter.get("/").body
            for text in [landing, exporter.log, alpha.text] { #expect(!text.contains(password)) }
            #expect(exporter.log.contains("password authentication failed") || exporter.log.contains("no password supplied"))
        }

        @Test func singleTargetPasswordFromDataSourcePassFile() throws {
            let password = "pw-\(UUID().uuidString)"
            try requirePassword(for: "secretive", password: password)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID().uuidString)").path
            try (password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let dsn = "host=127.0.0.1 port=\(cluster.port) user=secretive dbname=postgres"
            let withFile = try ExporterProcess(["--dsn", dsn], environment: ["DATA_SOURCE_PASS_FILE": file])
            #expect(try withFile.metrics().value("pg_up") == 1)
            let withFlag = try ExporterProcess(["--dsn", dsn, "--pg.password-file", file])
            #expect(try withFlag.metrics().value("pg_up") == 1)
            let without = try ExporterProcess(["--dsn", dsn])
            #expect(try without.metrics().value("pg_up") == 0)
            let missing = try ExporterProcess(["--dsn", dsn, "--pg.password-file", "/nonexistent/pw"], waitForListening: false)
            #expect(try missing.waitForExit() == 2)
            #expect(missing.log.contains("--pg.password-file /nonexistent/pw: No such file or directory"))
            for log in [withFile.log, withFlag.log, without.log] { #expect(!log.contains(password)) }
        }

        @Test func aHangingTargetNeverSlowsAnother() throws {
            let blackhole = try BlackholeListener()
            let config = try configFile(
                """
                targets:
                  good:
                    dsn: "\(cluster.dsn())"
                  hanging:
                    dsn: "host=127.0.0.1 port=\(blackhole.port) user=x dbname=y"
                """)
            let exporter = try ExporterProcess(["--config.file", config, "--pg.connect-timeout", "4s"])
            let port = exporter.port
            let hangingReply = Mutex<(Double, Double?)?>(nil)
            let thread = Thread {
                let started = Date()
                let reply = try? HTTPClient.request(port: port, path: "/probe?target=hanging")
                let up = reply.flatMap { try? Exposition(parsing: $0.body) }?.value("pg_up")
                hangingReply.withLock { $0 = (Date().timeIntervalSince(started), up) }
            }
            thread.start()
            usleep(300_000)
            for _ in 0..<5 {
                let started = Date()
                #expect(try Exposition(parsing: try exporter.get("/probe?target=good").body).value("pg_up") == 1)
                #expect(Date().timeIntervalSince(started) < 1, "the good target waited for the hanging one")
            }
            try eventually("the hanging probe to give up", timeout: 15) { hangingReply.withLock { $0 != nil } }
            let (seconds, up) = hangingReply.withLock { $0! }
            #expect(up == 0)
            #expect(seconds >= 3 && seconds < 8)
        }

        @Test func badConfigFilesStopStartUp() throws {
            let cases: [(String, String)] = [
                ("targets: {}\n", "targets: expected a mapping of names to targets"),
                ("targets:\n  a:\n    dsn: \"host=x password=hunter2\"\n", "targets.a.dsn: put the password in password_file or password_env, not in the DSN"),
                ("targets:\n  a:\n    dsn: \"host=x\"\n    password_env: NOT_SET_ANYWHERE\n", "targets.a.password_env: environment variable NOT_SET_ANYWHERE is not set"),
                ("targets:\n  a:\n    host: x\n", "targets.a.host: unknown key"),
                ("targets:\n  a b:\n    dsn: x\n", "targets.a b: target names may use letters, digits, '_', '-' and '.'"),
                ("target:\n  a:\n    dsn: x\n", "target: unknown key"),
            ]
            for (yaml, message) in cases {
                let file = try configFile(yaml)
                let exporter = try ExporterProcess(["--config.file", file], waitForListening: false)
                #expect(try exporter.waitForExit() == 2)
                #expect(exporter.log.contains("config file \(file): \(message)"), "\(exporter.log)")
                #expect(!exporter.log.contains("hunter2"))
                #expect(!exporter.log.contains("Usage:"), "a config-file error is not a usage error")
            }
        }

        /// The exporter's threads do not grow with its targets: one sampling loop and its
        /// connectors sample them all. (With a sampler thread per target, as before, 50 targets
        /// took 49 threads more than one.) The sampler connects on its own: no scrape is needed.
        @Test func fiftyTargetsAreSampledByAsManyThreadsAsOne() throws {
            let db = try cluster.createDatabase("fleet")
            func threads(targets: Int) throws -> (threads: Int, samples: Double) {
                let yaml = "targets:\n" + (0..<targets).map { "  t\($0):\n    dsn: \"\(cluster.dsn(database: db))\"\n" }.joined()
                let exporter = try ExporterProcess(["--config.file", try configFile(yaml), "--sample.interval", "200ms"])
                defer { _ = try? exporter.terminate() }
                let last = "/probe?target=t\(targets - 1)"
                try eventually("every target sampled", timeout: 20) {
                    let reply = try exporter.get(last)
                    return try Exposition(parsing: reply.body).value("pg_lock_exporter_samples_total") ?? 0 >= 5
                }
                let count = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(exporter.child.pid)/task").count
                let samples = try Exposition(parsing: try exporter.get(last).body).value("pg_lock_exporter_samples_total") ?? 0
                return (count, samples)
            }
            let one = try threads(targets: 1)
            let fifty = try threads(targets: 50)
            print("measured: threads with 1 target \(one.threads), with 50 targets \(fifty.threads)")
            #expect(fifty.threads == one.threads, "1 target: \(one.threads) threads, 50 targets: \(fifty.threads)")
            #expect(fifty.samples >= 5)
        }

        @Test func samplerCountsAnEpisodeShorterThanTheScrapeInterval() throws {
            let db = try cluster.createDatabase("sampled")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db), "--sample.interval", "100ms"])
            let before = try exporter.metrics()
            #expect(before.value("pg_blocking_episodes_total", ["datname": db]) == 0)
            #expect(before.value("pg_blocked_session_seconds_total", ["datname": db]) == 0)
            // A 1.5 s episode with two blocked sessions, entirely between two scrapes.
            let incident = try Incident(cluster: cluster, readers: 1, database: db)
            usleep(1_500_000)
            incident.holder.kill()
            try eventually("the episode to end") {
                try cluster.connect(database: db).execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") {
                    $0.int(0, 0)!
                } == 0
            }
            usleep(300_000)
            let after = try exporter.metrics()
            #expect(after.value("pg_blocked_sessions", ["datname": db]) == 0)
            // The holder's episode, ended by its death. When a sample catches the ALTER TABLE
            // that then runs with the reader queued behind it for a moment, that is a second
            // root, and a second (released) episode: one per root blocker.
            #expect(after.value("pg_blocking_episodes_ended_total", ["datname": db, "end": "root_ended"]) == 1)
            let episodes = try #require(after.value("pg_blocking_episodes_total", ["datname": db]))
            #expect(episodes == 1 || (episodes == 2 && after.value("pg_blocking_episodes_ended_total", ["datname": db, "end": "released"]) == 1))
            let blockedSeconds = try #require(after.value("pg_blocked_session_seconds_total", ["datname": db]))
            #expect(blockedSeconds > 2.0 && blockedSeconds < 5.0, "two sessions blocked for about 1.5-2 s: \(blockedSeconds)")
            let idleSeconds = try #require(after.value("pg_idle_in_transaction_session_seconds_total", ["datname": db]))
            #expect(idleSeconds > 1.0 && idleSeconds < 4.0, "one session idle in transaction for about 1.5-2 s: \(idleSeconds)")
            #expect((after.value("pg_lock_exporter_samples_total") ?? 0) >= 15)
            try expectPromtoolAccepts(after.text)
            incident.end()
        }
    }
}
