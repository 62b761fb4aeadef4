import Dispatch
import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// The exporter binary against a real PostgreSQL. Serialized: one test restarts the server.
    @Suite struct ExporterIntegrationTests {
        let cluster: TestCluster

        init() throws { cluster = try TestCluster.get() }

        /// Exporter sessions currently connected to the cluster.
        func exporterConnections() throws -> Int {
            try cluster.connect().execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_lock_exporter'"
            ) { $0.int(0, 0)! }
        }

        @Test func incidentScrapeNamesRootBlockerAndWaitersExactly() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let quiet = try cluster.createDatabase("quiet")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database)])
            let metrics = try exporter.metrics()
            let db = incident.database

            #expect(metrics.value("pg_up") == 1)
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 3)
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": db]) == 2)
            #expect(metrics.value("pg_blocking_root_sessions", ["datname": db, "state": "idle in transaction"]) == 1)
            #expect(metrics.all("pg_blocking_root_sessions", ["datname": db]).count == 1)
            let root = metrics.all("pg_blocking_root_blocked_sessions", ["datname": db])
            #expect(root.count == 1)
            #expect(
                root.first?.labels == [
                    "datname": db, "pid": String(incident.holderPID), "usename": "postgres", "application_name": "worker",
                    "client_addr": "local", "state": "idle in transaction", "gid": "", "pgbouncer_client": "",
                ])
            #expect(root.first?.value == 3)
            #expect(metrics.value("pg_sessions", ["datname": db, "application_name": "worker", "state": "idle in transaction"]) == 1)
            #expect(metrics.value("pg_sessions", ["datname": db, "application_name": "alembic", "state": "active"]) == 1)
            #expect(metrics.value("pg_sessions", ["datname": db, "application_name": "web", "state": "active"]) == 2)
            #expect(metrics.all("pg_sessions", ["application_name": "pg_lock_exporter"]).isEmpty)

            // Ages agree with the server's own clock, read right after the scrape.
            let (idleAge, waitAge) = try cluster.connect(database: db).execute(
                """
                SELECT extract(epoch FROM now() - a.state_change),
                       (SELECT extract(epoch FROM now() - min(waitstart)) FROM pg_locks WHERE NOT granted AND pid = $2::int)
                FROM pg_stat_activity a WHERE a.pid = $1::int
                """, [String(incident.holderPID), String(incident.migrationPID)]
            ) { ($0.double(0, 0)!, $0.double(0, 1)!) }
            let scrapedIdle = try #require(metrics.value("pg_idle_in_transaction_seconds", ["datname": db, "application_name": "worker"]))
            #expect(scrapedIdle > 0 && scrapedIdle <= idleAge && idleAge - scrapedIdle < 1)
            let stateSeconds = try #require(metrics.value("pg_blocking_root_state_seconds", ["datname": db, "pid": String(incident.holderPID)]))
            #expect(stateSeconds == scrapedIdle)
            let scrapedWait = try #require(metrics.value("pg_lock_wait_seconds_max", ["datname": db]))
            #expect(scrapedWait > 0 && scrapedWait <= waitAge && waitAge - scrapedWait < 1)

            // A quiet database has its zero-filled series.
            #expect(metrics.value("pg_blocked_sessions", ["datname": quiet]) == 0)
            #expect(metrics.value("pg_lock_wait_seconds_max", ["datname": quiet]) == 0)
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": quiet]) == 0)

            try expectPromtoolAccepts(metrics.text)
        }

        @Test func seriesClearOnceTheRootBlockerEnds() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database)])
            #expect(try exporter.metrics().value("pg_blocked_sessions", ["datname": incident.database]) == 2)
            incident.holder.kill()
            try eventually("blocking to clear") {
                let m = try exporter.metrics()
                return m.value("pg_blocked_sessions", ["datname": incident.database]) == 0
                    && m.value("pg_blocking_chain_depth_max", ["datname": incident.database]) == 0
                    && m.all("pg_blocking_root_blocked_sessions", ["datname": incident.database]).isEmpty
            }
        }

        @Test func labelValuesWithQuotesBackslashesAndNewlinesStayValid() throws {
            let db = try cluster.createDatabase("labels")
            let admin = try cluster.connect()
            let role = "we\"ird\\role\nx"
            try admin.execute("SELECT 1") { _ in }
            try admin.execute("DROP ROLE IF EXISTS \"we\"\"ird\\role\nx\"") { _ in }
            try admin.execute("CREATE ROLE \"we\"\"ird\\role\nx\" LOGIN") { _ in }
            let odd = try PostgresConnection(
                ConnectionSettings(dsn: cluster.dsn(database: db, user: "'we\"ird\\\\role\nx'"), applicationName: "app \"one\" \\ two"))
            try odd.execute("BEGIN") { _ in }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db)])
            let metrics = try exporter.metrics()
            #expect(
                metrics.value(
                    "pg_sessions", ["datname": db, "usename": role, "application_name": "app \"one\" \\ two", "state": "idle in transaction"]
                ) == 1)
            try expectPromtoolAccepts(metrics.text)
            withExtendedLifetime(odd) {}
        }

        /// Holds an exclusive lock on `pg_database` (which `pg_stat_activity` joins) for a while.
        /// Nothing can read `pg_stat_activity` meanwhile, so psql reports when it holds the lock.
        func lockCatalog(_ session: PsqlSession, seconds: Int) throws {
            session.send("BEGIN; LOCK TABLE pg_database IN ACCESS EXCLUSIVE MODE; SELECT 'catalog' || '-locked'; SELECT pg_sleep(\(seconds)); COMMIT;")
            try eventually("psql to hold the lock on pg_database") { session.output.contains("catalog-locked") }
        }

        @Test func concurrentScrapesShareOneCollectionOnOneConnection() throws {
            let db = try cluster.createDatabase("concurrent")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db), "--pg.lock-timeout", "10s"])
            let before = try #require(try exporter.metrics().value("pg_lock_exporter_collections_total"))
            // Hold a lock the collection needs, so every scrape below arrives while one collection waits.
            let locker = try PsqlSession(dsn: cluster.dsn(), applicationName: "locker")
            defer { locker.kill() }
            try lockCatalog(locker, seconds: 2)
            let results = Mutex<[Double?]>([])
            let port = exporter.port
            // One thread per scrape (concurrentPerform would use only as many threads as cores).
            let done = DispatchGroup()
            for _ in 0..<12 {
                done.enter()
                Thread.detachNewThread {
                    let reply = try? HTTPClient.request(port: port, path: "/metrics")
                    let up = reply.flatMap { try? Exposition(parsing: $0.body) }?.value("pg_up")
                    results.withLock { $0.append(up) }
                    done.leave()
                }
            }
            done.wait()
            #expect(results.withLock { $0 } == Array(repeating: 1, count: 12))
            #expect(try exporterConnections() == 1)
            let after = try #require(try exporter.metrics().value("pg_lock_exporter_collections_total"))
            // 12 concurrent scrapes shared one collection; the last scrape above made one more.
            #expect(after - before == 2)
        }

        @Test func scrapeAnswersWithinPrometheusTimeoutWhenACatalogIsLocked() throws {
            let db = try cluster.createDatabase("timeout")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db), "--pg.lock-timeout", "30s"])
            #expect(try exporter.metrics().value("pg_up") == 1)
            let locker = try PsqlSession(dsn: cluster.dsn(), applicationName: "locker")
            defer { locker.kill() }
            try lockCatalog(locker, seconds: 4)
            let started = Date()
            let metrics = try exporter.metrics(headers: ["X-Prometheus-Scrape-Timeout-Seconds": "2"])
            let elapsed = Date().timeIntervalSince(started)
            #expect(metrics.value("pg_up") == 0)
            #expect(elapsed < 2)
            // The server cancelled the statement; the same connection serves again once the lock is gone.
            try eventually("pg_up 1 after the lock is released", timeout: 10) { try exporter.metrics().value("pg_up") == 1 }
            #expect(try exporterConnections() == 1)
        }

        @Test func survivesServerRestartAndReconnects() throws {
            let db = try cluster.createDatabase("restart")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: db)])
            #expect(try exporter.metrics().value("pg_up") == 1)
            try cluster.stop()
            let down = try exporter.get()
            #expect(down.status == 200)
            #expect(try Exposition(parsing: down.body).value("pg_up") == 0)
            #expect(try exporter.metrics().value("pg_lock_exporter_scrape_errors_total") ?? 0 >= 1)
            try cluster.start()
            try eventually("pg_up 1 after restart") { try exporter.metrics().value("pg_up") == 1 }
            #expect(exporter.isRunning)
            #expect(try exporterConnections() == 1)
        }

        @Test func serverDownAtStartIsNotFatalAndThePasswordNeverShows() throws {
            let password = "s3cret-Pa55word"
            let exporter = try ExporterProcess(["--dsn", "host=127.0.0.1 port=1 user=monitor password=\(password) connect_timeout=2"])
            let reply = try exporter.get()
            #expect(reply.status == 200)
            #expect(try Exposition(parsing: reply.body).value("pg_up") == 0)
            let landing = try exporter.get("/")
            #expect(landing.status == 200)
            #expect(landing.body.contains("host=127.0.0.1 port=1"))
            try eventually("the connection error in the log") { exporter.log.contains("cannot read PostgreSQL") }
            for text in [reply.body, landing.body, exporter.log] { #expect(!text.contains(password)) }
            #expect(try exporter.terminate() == 0)
        }

        @Test func httpSurface() throws {
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--web.telemetry-path", "/custom"])
            #expect(try exporter.get("/custom").status == 200)
            #expect(try exporter.get("/custom").headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(try exporter.get("/metrics").status == 404)
            #expect(try exporter.get("/custom", method: "POST").status == 405)
            #expect(try exporter.get("/custom", method: "DELETE").headers["allow"] == "GET, HEAD")
            let head = try exporter.get("/custom", method: "HEAD")
            #expect(head.status == 200 && head.body.isEmpty)
            let landing = try exporter.get("/")
            #expect(landing.status == 200 && landing.body.contains("<a href=\"/custom\">"))
            #expect(try exporter.terminate() == 0)
        }

        @Test(arguments: [
            (["--web.listen-address", "nonsense"], "--web.listen-address"),
            (["--log.level", "loud"], "--log.level"),
            (["--pg.statement-timeout", "5 minutes"], "--pg.statement-timeout"),
            (["--dsn", "host=db password hunter2"], "--dsn"),
            (["--no-such-flag"], "--no-such-flag"),
        ])
        func badCommandLineExitsNonZeroNamingTheProblem(arguments: [String], named: String) throws {
            let exporter = try ExporterProcess(arguments, waitForListening: false)
            let status = try exporter.waitForExit()
            #expect(status != 0)
            #expect(exporter.log.contains(named))
            #expect(!exporter.log.contains("hunter2"))
        }

        @Test func dataSourceNameFromTheEnvironment() throws {
            let db = try cluster.createDatabase("envdsn")
            let exporter = try ExporterProcess([], environment: ["DATA_SOURCE_NAME": cluster.dsn(database: db)])
            let metrics = try exporter.metrics()
            #expect(metrics.value("pg_up") == 1)
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 0)
        }
    }
}

/// Runs the real `promtool check metrics` on a scrape.
func expectPromtoolAccepts(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("scrape-\(UUID().uuidString).txt")
    try Data(text.utf8).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let result = try Shell.run(["sh", "-c", "command -v promtool >/dev/null || { echo 'promtool is not installed (apt-get install prometheus)'; exit 3; }; promtool check metrics < '\(file.path)'"])
    #expect(result.status == 0, "promtool check metrics: \(result.output)", sourceLocation: sourceLocation)
}
