import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// The pages for people (`/tree`, `/episodes`, issue 22) over HTTP: what they answer, with
    /// which headers, to whom. What a browser makes of them is tests/test_pages_browser.py's.
    @Suite struct PagesIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        @Test func treeDrawsTheIncidentWithTheSafetyHeaders() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database), "--sample.interval", "0"])
            let reply = try exporter.get("/tree")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "text/html; charset=utf-8")
            #expect(reply.headers["content-security-policy"] == PageDocument.contentSecurityPolicy)
            #expect(reply.headers["cache-control"] == "no-store")
            #expect(reply.headers["x-content-type-options"] == "nosniff")
            let h = incident.holderPID, m = incident.migrationPID
            #expect(reply.body.contains("<section class=\"tree\" id=\"root-\(h)\">\n<h2>pid \(h) blocks 3 sessions (chain depth 2)</h2>"))
            #expect(reply.body.contains("<meta http-equiv=\"refresh\" content=\"5\">"))
            #expect(reply.body.contains("<li class=\"session\" data-pid=\"\(m)\">"))
            #expect(reply.body.contains("<code class=\"query\">SELECT * FROM features LIMIT $1</code>"))
            #expect(!reply.body.contains("<script"))
            let still = try exporter.get("/tree?refresh=0")
            #expect(!still.body.contains("http-equiv=\"refresh\""))
            let css = try exporter.get(PageStyle.path)
            #expect(css.status == 200 && css.headers["content-type"] == "text/css; charset=utf-8")
            #expect(css.headers["content-security-policy"] == PageDocument.contentSecurityPolicy)
            let landing = try exporter.get("/")
            #expect(landing.body.contains("<a href=\"tree\">Blocking trees now</a>"))
            #expect(try exporter.get("/tree", method: "POST").status == 405)
            // Episodes are off with --sample.interval 0: one line, as a page.
            let off = try exporter.get("/episodes")
            #expect(off.status == 404)
            #expect(off.body.contains("<p class=\"error\">blocking episodes are off: serve runs with --sample.interval 0</p>"))
        }

        /// A scrape that arrives while a page's collection runs shares it: one collection for
        /// both. The relay holds the page's collection until the scrape has joined.
        @Test func aPageAndAConcurrentScrapeShareOneCollection() throws {
            let db = try cluster.createDatabase("shared")
            let relay = try PausableRelay(to: cluster.port)
            defer { relay.stop() }
            let exporter = try ExporterProcess([
                "--dsn", "host=127.0.0.1 port=\(relay.port) user=postgres dbname=\(db)", "--sample.interval", "0",
            ])
            func collections() throws -> Double { try exporter.metrics().value("pg_lock_exporter_collections_total") ?? -1 }
            let before = try collections()  // this scrape's own collection is counted in it
            relay.pause()
            let page = Mutex<HTTPReply?>(nil), scrape = Mutex<HTTPReply?>(nil)
            let port = exporter.port
            let pageThread = Thread { page.withLock { $0 = try? HTTPClient.request(port: port, method: "GET", path: "/tree", headers: [:]) } }
            pageThread.start()
            usleep(300_000)  // the page leads
            let scrapeThread = Thread { scrape.withLock { $0 = try? HTTPClient.request(port: port, method: "GET", path: "/metrics", headers: [:]) } }
            scrapeThread.start()
            usleep(300_000)  // the scrape joins
            relay.resume()
            try eventually("both answers") { page.withLock { $0 != nil } && scrape.withLock { $0 != nil } }
            #expect(page.withLock { $0?.status } == 200)
            #expect(page.withLock { $0?.body.contains("No session is blocked.") } == true)
            let scraped = try Exposition(parsing: scrape.withLock { $0!.body })
            #expect(scraped.value("pg_up") == 1)
            // The joined scrape reports the page's collection: one more than before, not two.
            #expect(scraped.value("pg_lock_exporter_collections_total") == before + 1)
        }

        @Test func pagesAnswer401WithoutCredentials() throws {
            let tls = try TLSFixture.get()
            let config = try tls.webConfig("basic_auth_users:\n  prometheus: '\(TLSFixture.bcryptHash)'\n")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--web.config.file", config])
            for path in ["/tree", "/episodes", "/episodes/0123456789abcdef", PageStyle.path] {
                #expect(try exporter.get(path).status == 401, "\(path)")
            }
            let basic = "Basic " + Data("prometheus:\(TLSFixture.password)".utf8).base64EncodedString()
            #expect(try exporter.get("/tree", headers: ["Authorization": basic]).status == 200)
        }

        @Test func multiTargetTreesAndAnUnknownTarget() throws {
            let a = try cluster.createDatabase("treea")
            let b = try cluster.createDatabase("treeb")
            let yaml = "targets:\n  alpha:\n    dsn: \"\(cluster.dsn(database: a))\"\n  beta:\n    dsn: \"\(cluster.dsn(database: b))\"\n"
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID().uuidString).yml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let exporter = try ExporterProcess(["--config.file", path, "--sample.interval", "0"])
            let list = try exporter.get("/tree")
            #expect(list.status == 200)
            #expect(list.body.contains("<li><a href=\"tree?target=alpha\">alpha</a></li><li><a href=\"tree?target=beta\">beta</a></li>"))
            for name in ["alpha", "beta"] {
                let page = try exporter.get("/tree?target=\(name)")
                #expect(page.status == 200)
                #expect(page.body.contains("<h1>Blocking trees · \(name)</h1>"))
                #expect(page.body.contains("No session is blocked."))
            }
            let unknown = try exporter.get("/tree?target=gamma%3Cb%3E")
            #expect(unknown.status == 404)
            #expect(unknown.body.contains("<p class=\"error\">unknown target &quot;gamma&lt;b&gt;&quot;; known: alpha, beta</p>"))
        }

        @Test func episodePagesListFilterAndRefuseLikeTheAPI() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(database: incident.database), "--sample.interval", "200ms"])
            var id = ""
            try eventually("the episode to be recorded") {
                let reply = try exporter.get("/api/v1/episodes")
                id = try EpisodeAPIAnswer.records(status: reply.status, body: Array(reply.body.utf8), single: false).first?.id ?? ""
                return !id.isEmpty
            }
            // The form sends empty fields: they filter nothing.
            let list = try exporter.get("/episodes?datname=&target=&since=")
            #expect(list.status == 200)
            #expect(list.body.contains("<tr class=\"episode\" data-id=\"\(id)\">"))
            #expect(list.body.contains("<a href=\"episodes/\(id)\">"))
            #expect(try exporter.get("/episodes?datname=\(incident.database)").body.contains("data-id=\"\(id)\""))
            #expect(try !exporter.get("/episodes?datname=elsewhere").body.contains("data-id="))
            let one = try exporter.get("/episodes/\(id)")
            #expect(one.status == 200)
            #expect(one.body.contains("<pre class=\"write-up\">Episode \(id) in database \(incident.database)"))
            #expect(one.body.contains("<link rel=\"stylesheet\" href=\"../static/pages.css\">"))
            let bad = try exporter.get("/episodes?limit=0")
            #expect(bad.status == 400)
            #expect(bad.body.contains("<p class=\"error\">limit: must be a whole number from 1 to 1000, not &quot;0&quot;</p>"))
            #expect(try exporter.get("/episodes/0000000000000000").status == 404)
            #expect(try exporter.get("/episodes/not-an-id").status == 404)
        }
    }
}
