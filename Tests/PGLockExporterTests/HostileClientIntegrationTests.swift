import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// What an unauthenticated client can send to `serve` and `remediate --listen` (issue 19):
    /// hostile scrape headers, and bodies where none is expected.
    @Suite struct HostileClientIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        /// Finding 1: `X-Prometheus-Scrape-Timeout-Seconds: 1.1e10` on scrapes that join a running
        /// collection trapped in `Int(timeout * 1e9)` (SIGILL), and the leader took the header's
        /// year as its deadline. Now the budget is clamped to `--web.scrape-timeout`: with 3s,
        /// every scrape answers within 3 s and the process lives.
        @Test func hostileScrapeTimeoutHeadersOnConcurrentScrapesAreClampedToTheCeiling() throws {
            let db = try cluster.createDatabase("hostile")
            let exporter = try ExporterProcess([
                "--dsn", cluster.dsn(database: db), "--web.scrape-timeout", "3s", "--pg.lock-timeout", "30s",
                "--pg.statement-timeout", "30s",
            ])
            #expect(try exporter.metrics().value("pg_up") == 1)
            // The catalog locked for 6 s: the collection waits, so the scrapes below join it.
            let locker = try PsqlSession(dsn: cluster.dsn(), applicationName: "locker")
            defer { locker.kill() }
            locker.send("BEGIN; LOCK TABLE pg_database IN ACCESS EXCLUSIVE MODE; SELECT 'catalog' || '-locked'; SELECT pg_sleep(6); COMMIT;")
            try eventually("psql to hold the lock") { locker.output.contains("catalog-locked") }

            let hostile = ["1.1e10", "1.1e10", "1.1e10", "1e308", "inf", "nan", "-1", "garbage", "0x1p62", "1.1e10"]
            let results = Mutex<[(header: String, status: Int?, seconds: Double)]>([])
            let done = DispatchGroup()
            let port = exporter.port
            for (index, header) in hostile.enumerated() {
                done.enter()
                Thread.detachNewThread {
                    usleep(UInt32(index) * 50_000)  // the first leads, the others join its collection
                    let started = Date()
                    let reply = try? HTTPClient.request(
                        port: port, path: "/metrics", headers: ["X-Prometheus-Scrape-Timeout-Seconds": header], timeout: 20)
                    results.withLock { $0.append((header, reply?.status, Date().timeIntervalSince(started))) }
                    done.leave()
                }
            }
            #expect(done.wait(timeout: .now() + 30) == .success)
            let answered = results.withLock { $0 }
            print("measured: hostile scrape headers, --web.scrape-timeout 3s: \(answered.map { "\($0.header) → \($0.status.map(String.init) ?? "no answer") after \(String(format: "%.2f s", $0.seconds))" })")
            #expect(exporter.isRunning, "the exporter died: \(exporter.log.split(separator: "\n").first { $0.contains("Fatal error") } ?? "")")
            #expect(answered.count == hostile.count)
            for result in answered {
                #expect(result.status == 200, "\(result.header)")
                #expect(result.seconds < 3, "\(result.header) answered after \(result.seconds) s, past the 3 s ceiling")
            }
            #expect(try exporter.terminate() == 0)
        }
    }
}
