import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// The exporter next to a misbehaving server and misbehaving clients: it answers in time,
    /// never holds more than its one connection, and stays up.
    @Suite struct FaultIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        func exporterConnections(_ connection: PostgresConnection) throws -> Int {
            try connection.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_lock_exporter'") { $0.int(0, 0)! }
        }

        @Test func aServerThatHangsOnConnectStillGetsAnAnswerInTime() throws {
            let blackhole = try BlackholeListener()
            let exporter = try ExporterProcess(
                ["--dsn", "host=127.0.0.1 port=\(blackhole.port) user=x dbname=y", "--pg.connect-timeout", "10s"])
            for _ in 0..<2 {
                let started = Date()
                let metrics = try exporter.metrics(headers: ["X-Prometheus-Scrape-Timeout-Seconds": "3"])
                #expect(metrics.value("pg_up") == 0)
                #expect(Date().timeIntervalSince(started) < 3.5)
            }
        }

        @Test func aSaturatedServerNeverMakesTheExporterPileUpConnections() throws {
            // A server of its own: 7 slots, 3 reserved for superusers, so the admin session and three
            // fillers leave none for a non-superuser such as the exporter's role.
            let directory = "/tmp/pg-lock-saturated-\(getpid())"
            let port = Int.random(in: 20000..<60000)
            let script = TestCluster.packageRoot.appendingPathComponent("scripts/pg-sandbox").path
            let started = try Shell.run(["env", "PG_SANDBOX_MAX_CONNECTIONS=7", script, "start", directory, String(port)])
            try #require(started.status == 0, "\(started.output)")
            defer {
                _ = try? Shell.run([script, "stop", directory])
                _ = try? Shell.run(["rm", "-rf", directory])
            }
            let admin = try PostgresConnection(ConnectionSettings(dsn: "host=\(directory) port=\(port) user=postgres", applicationName: "admin"))
            try admin.execute("CREATE ROLE monitor LOGIN IN ROLE pg_monitor") { _ in }
            try admin.execute("CREATE ROLE app LOGIN") { _ in }
            let fillers = try (0..<3).map { _ in try PsqlSession(dsn: "host=\(directory) port=\(port) user=app dbname=postgres", applicationName: "filler") }
            defer { fillers.forEach { $0.kill() } }
            try eventually("the three slots to be taken") {
                try admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'filler'") { $0.int(0, 0)! } == 3
            }
            let exporter = try ExporterProcess(["--dsn", "host=\(directory) port=\(port) user=monitor dbname=postgres"])
            for _ in 0..<5 {
                #expect(try exporter.metrics().value("pg_up") == 0)
                // A refused backend shows in pg_stat_activity for a moment while it exits.
                try eventually("the refused connection to be gone", timeout: 3) { try exporterConnections(admin) == 0 }
            }
            #expect(exporter.log.contains("remaining connection slots are reserved"))
            fillers[0].kill()
            try eventually("pg_up 1 once a slot is free") { try exporter.metrics().value("pg_up") == 1 }
            for _ in 0..<5 { _ = try exporter.metrics() }
            #expect(try exporterConnections(admin) == 1)
        }

        @Test func aHundredConcurrentScrapesAreAllAnsweredOverOneConnection() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database)])
            let port = exporter.port
            let database = incident.database
            let replies = Mutex<[(Int, Double?, Double)]>([])
            let done = DispatchGroup()
            for _ in 0..<100 {
                done.enter()
                Thread.detachNewThread {
                    let started = Date()
                    let reply = try? HTTPClient.request(port: port, path: "/metrics")
                    let blocked = reply.flatMap { try? Exposition(parsing: $0.body) }?.value("pg_blocked_sessions", ["datname": database])
                    replies.withLock { $0.append((reply?.status ?? 0, blocked, Date().timeIntervalSince(started))) }
                    done.leave()
                }
            }
            #expect(done.wait(timeout: .now() + 60) == .success)
            let all = replies.withLock { $0 }
            #expect(all.count == 100)
            #expect(all.allSatisfy { $0.0 == 200 && $0.1 == 3 })
            #expect(all.map(\.2).max()! < 10, "slowest of 100 concurrent scrapes")
            #expect(try exporterConnections(cluster.connect()) == 1)
        }

        /// Opens a raw connection to the exporter and sends `bytes`.
        func rawSend(_ port: Int, _ bytes: [UInt8], closeAfter: Bool = true) -> Int32 {
            let fd = connectedLoopbackSocket(port: port)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if closeAfter { close(fd) }
            return fd
        }

        @Test func garbageHugeHeadersAndSlowClientsNeverStopTheScrape() throws {
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--web.connection-timeout", "2s"])
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<50 {
                _ = rawSend(exporter.port, (0..<Int.random(in: 1...4096, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
            _ = rawSend(exporter.port, Array("GET /metr".utf8))
            _ = rawSend(exporter.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nabc".utf8))
            let huge = try HTTPClient.request(port: exporter.port, path: "/metrics", headers: ["X-Big": String(repeating: "a", count: 64 * 1024)])
            #expect(huge.status == 431 || huge.status == 413 || huge.status == 400)
            // Slowloris: connections that never finish their headers are closed after the timeout.
            let slow = (0..<20).map { _ in rawSend(exporter.port, Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8), closeAfter: false) }
            defer { slow.forEach { close($0) } }
            #expect(try exporter.metrics().value("pg_up") == 1)
            usleep(3_500_000)
            var buffer = [UInt8](repeating: 0, count: 16)
            let closedByServer = slow.filter { fd in
                var tv = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                return recv(fd, &buffer, buffer.count, 0) <= 0
            }
            #expect(closedByServer.count == 20)
            #expect(try exporter.metrics().value("pg_up") == 1)
            #expect(exporter.isRunning)
        }

        /// Private (anonymous) memory of the exporter after a warm-up and after 10,000 more scrapes
        /// of the incident: it must not grow (no PGresult, PGconn or response leaks per scrape).
        @Test func privateMemoryStaysFlatOverTenThousandScrapes() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database)])
            func privateKiB() throws -> Int {
                let status = try String(contentsOfFile: "/proc/\(exporter.child.pid)/status", encoding: .utf8)
                let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") })
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])!
            }
            for _ in 0..<500 { _ = try exporter.get() }
            let before = try privateKiB()
            for _ in 0..<10_000 {
                let reply = try exporter.get()
                try #require(reply.status == 200)
            }
            let after = try privateKiB()
            #expect(try exporter.metrics().value("pg_blocked_sessions", ["datname": incident.database]) == 3)
            #expect(after - before < 1024, "private memory grew from \(before) KiB to \(after) KiB over 10,000 scrapes")
        }

        @Test func sigtermDuringAScrapeExitsCleanlyAndPromptly() throws {
            let db = try cluster.createDatabase("sigterm")
            let exporter = try ExporterProcess(
                ["--dsn", cluster.dsn(database: db), "--pg.lock-timeout", "30s", "--pg.statement-timeout", "30s"])
            let locker = try PsqlSession(dsn: cluster.dsn(), applicationName: "locker")
            defer { locker.kill() }
            locker.send("BEGIN; LOCK TABLE pg_database IN ACCESS EXCLUSIVE MODE; SELECT 'catalog' || '-locked'; SELECT pg_sleep(8); COMMIT;")
            try eventually("psql to hold the lock") { locker.output.contains("catalog-locked") }
            let port = exporter.port
            Thread.detachNewThread { _ = try? HTTPClient.request(port: port, path: "/metrics", timeout: 20) }
            usleep(500_000)
            let started = Date()
            #expect(try exporter.terminate(timeout: 10) == 0)
            #expect(Date().timeIntervalSince(started) < 2, "shutdown waited for the blocked query")
        }
    }
}
