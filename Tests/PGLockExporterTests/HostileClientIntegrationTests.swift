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

        /// The exporter's resident memory, from /proc/PID/status (kB).
        static func residentKilobytes(_ process: ExporterProcess) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(process.child.pid)/status", encoding: .utf8)
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { throw TestFailure("no VmRSS in /proc/\(process.child.pid)/status") }
            return kilobytes
        }

        /// `count` clients at once, each sending `head` and then up to `bodyBytes` of body (as much
        /// as the server takes within 2 s), then stalling with the connection open. Returns the
        /// status each got (nil: none yet) and the sockets, still open, for the caller to close.
        static func stalledBodies(port: Int, count: Int, head: String, bodyBytes: Int) -> (statuses: [Int?], sockets: [Int32]) {
            let results = Mutex<[(Int?, Int32)]>([])
            let done = DispatchGroup()
            for _ in 0..<count {
                done.enter()
                Thread.detachNewThread {
                    defer { done.leave() }
                    let fd = connectedLoopbackSocket(port: port)
                    var timeout = timeval(tv_sec: 2, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    let body = [UInt8](repeating: UInt8(ascii: "x"), count: bodyBytes)
                    var sent = 0
                    while sent < bodyBytes {
                        let n = body[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        guard n > 0 else { break }  // refused and closed, or not read for 2 s
                        sent += n
                    }
                    var wait = timeval(tv_sec: 1, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                    var buffer = [UInt8](repeating: 0, count: 512)
                    let n = recv(fd, &buffer, buffer.count, 0)
                    let reply = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
                    let status = reply.hasPrefix("HTTP/1.1 ") ? Int(reply.dropFirst(9).prefix(3)) : nil
                    results.withLock { $0.append((status, fd)) }
                }
            }
            done.wait()
            let all = results.withLock { $0 }
            return (all.map(\.0), all.map(\.1))
        }

        static func counts(_ statuses: [Int?]) -> String {
            Dictionary(grouping: statuses, by: { $0.map(String.init) ?? "none" }).map { "\($0.key)×\($0.value.count)" }.sorted().joined(separator: " ")
        }

        /// Finding 6: routes that only answer GET buffered request bodies up to 1 MiB per
        /// connection: 60 stalled `POST /metrics` with nearly 1 MiB each took the exporter's RSS
        /// up by ~100 MB (the chart's limit is 64Mi). Now a body where none is expected is
        /// answered (405 here) from the headers, before any of it is read.
        @Test func stalledBodiesOnRoutesThatTakeNoneAreRefusedBeforeTheyAreRead() throws {
            let exporter = try ExporterProcess(["--dsn", cluster.dsn()])
            #expect(try exporter.metrics().value("pg_up") == 1)
            let before = try Self.residentKilobytes(exporter)
            let size = 1 << 20
            let attack = Self.stalledBodies(
                port: exporter.port, count: 60, head: "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n",
                bodyBytes: size - 1)
            defer { attack.sockets.forEach { close($0) } }
            usleep(500_000)
            let after = try Self.residentKilobytes(exporter)
            print("measured: 60 stalled POST /metrics of 1 MiB: RSS \(before) kB → \(after) kB (+\((after - before) / 1024) MiB); answers: \(Self.counts(attack.statuses))")
            #expect(attack.statuses == Array(repeating: 405, count: 60))
            #expect(after - before < 8 * 1024, "RSS grew by \(after - before) kB")
            #expect(exporter.isRunning)
            #expect(try exporter.get("/metrics").status == 200)  // still serving meanwhile
            // A GET that announces a body (a length, or chunked) gets 413 from its headers.
            for announce in ["Content-Length: \(size)", "Transfer-Encoding: chunked"] {
                let get = Self.stalledBodies(
                    port: exporter.port, count: 5, head: "GET /metrics HTTP/1.1\r\nHost: x\r\n\(announce)\r\n\r\n", bodyBytes: 4096)
                get.sockets.forEach { close($0) }
                #expect(get.statuses == Array(repeating: 413, count: 5), "\(announce)")
            }
        }

        /// Finding 6 on the remediator: its GET routes refuse bodies the same way, and the
        /// webhook's bodies (authenticated) are capped in total across connections: 60 stalled
        /// 1 MiB webhook bodies hold at most the 8 MiB total; the others get 503 from the headers.
        @Test func stalledWebhookBodiesStayWithinTheTotalCap() throws {
            let token = "t0ken-\(UUID().uuidString)"
            let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)").path
            try (token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let remediator = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(), "--listen", "127.0.0.1:0", "--webhook.token-file", tokenFile,
            ])
            let size = 1 << 20
            let before = try Self.residentKilobytes(remediator)
            let metrics = Self.stalledBodies(
                port: remediator.port, count: 30, head: "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n",
                bodyBytes: size - 1)
            defer { metrics.sockets.forEach { close($0) } }
            let webhook = Self.stalledBodies(
                port: remediator.port, count: 60,
                head: "POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(size)\r\n\r\n",
                bodyBytes: size - 1)
            defer { webhook.sockets.forEach { close($0) } }
            usleep(500_000)
            let after = try Self.residentKilobytes(remediator)
            print("measured: remediator, 30 stalled POST /metrics + 60 stalled webhook bodies of 1 MiB: RSS \(before) kB → \(after) kB (+\((after - before) / 1024) MiB); /metrics answers: \(Self.counts(metrics.statuses)); webhook answers: \(Self.counts(webhook.statuses))")
            #expect(metrics.statuses == Array(repeating: 405, count: 30))
            // 8 bodies fit the 8 MiB total and wait, unanswered, for the rest of their bytes.
            #expect(webhook.statuses.filter { $0 == 503 }.count == 52)
            #expect(webhook.statuses.filter { $0 == nil }.count == 8)
            #expect(after - before < 16 * 1024, "RSS grew by \(after - before) kB")
            #expect(remediator.isRunning)
            #expect(try remediator.get("/-/healthy").status == 200)
        }
    }
}
