import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// The episode API of a running `serve` and `pg_lock_exporter episodes` by `--url` and by
    /// `--path`, on a store file filled beforehand with known records (the episode tests record
    /// real ones; here the exact answers to filters matter).
    @Suite struct EpisodeReadIntegrationTests {
        typealias F = EpisodeStoreFixtures
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        /// Five records: prod/app at 0, 10 (ongoing), 20; prod/shop at 30; eu/app at 40 (ended after 1 s).
        static func fill(_ path: String) throws -> [EpisodeRecord] {
            let store = try EpisodeStore.open(path: path)
            defer { store.close() }
            var records = [
                F.record(pid: 1, start: 0), F.record(pid: 2, start: 10, length: nil), F.record(pid: 3, start: 20),
                F.record(pid: 4, datname: "shop", start: 30), F.record(pid: 5, target: "eu", start: 40),
            ]
            records[0] = F.full()
            for record in records { try store.upsert(record) }
            return records
        }

        static func decode(_ reply: HTTPReply) throws -> [String] {
            try EpisodeAPIAnswer.records(status: reply.status, body: Array(reply.body.utf8), single: false).map(\.id)
        }

        @Test func apiAnswersFiltersExactly() throws {
            let directory = try F.directory()
            defer { F.remove(directory) }
            let path = directory + "/episodes.db"
            let records = try Self.fill(path)
            let ids = records.map(\.id)
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--episodes.path", path])
            defer { _ = try? exporter.terminate() }

            #expect(try Self.decode(exporter.get("/api/v1/episodes")) == [ids[4], ids[3], ids[2], ids[1], ids[0]])
            #expect(try Self.decode(exporter.get("/api/v1/episodes?limit=2")) == [ids[4], ids[3]])
            #expect(try Self.decode(exporter.get("/api/v1/episodes?datname=shop")) == [ids[3]])
            #expect(try Self.decode(exporter.get("/api/v1/episodes?target=eu")) == [ids[4]])
            // The episode a previous run left ongoing was ended unobserved at start, at the last
            // time it was known to go on (its start: it had lasted 0 s).
            #expect(exporter.log.contains("episodes left ongoing by a previous run ended as unobserved"))
            #expect(try Self.decode(exporter.get("/api/v1/episodes?ongoing=true")) == [])
            #expect(try Self.decode(exporter.get("/api/v1/episodes?ongoing=false&datname=app&target=prod")) == [ids[2], ids[1], ids[0]])
            // since: ongoing ones, and those that ended at or after it (record 3 ended at base+21).
            #expect(try Self.decode(exporter.get("/api/v1/episodes?since=\(FormDecoding.encode(F.at(21).description))"))
                == [ids[4], ids[3], ids[2]])
            #expect(try Self.decode(exporter.get("/api/v1/episodes?since=1h")) == [])

            let one = try exporter.get("/api/v1/episodes/\(ids[0])")
            #expect(one.status == 200)
            #expect(one.headers["content-type"] == "application/json")
            #expect(try EpisodeAPIAnswer.records(status: one.status, body: Array(one.body.utf8), single: true) == [records[0]])

            for (query, line) in [
                ("limit=0", "limit: must be a whole number from 1 to 1000, not \\\"0\\\""),
                ("limit=1&limit=2", "limit: given more than once"),
                ("user=postgres", "unknown parameter \\\"user\\\"; known: since, datname, target, ongoing, limit"),
                ("since=soon", "since: must be an RFC 3339 time (2026-12-05T03:00:00Z) or a duration ago (1h), not \\\"soon\\\""),
            ] {
                let reply = try exporter.get("/api/v1/episodes?\(query)")
                #expect(reply.status == 400, "\(query)")
                #expect(reply.body == "{\"error\":\"\(line)\",\"errorType\":\"bad_data\",\"status\":\"error\"}\n", "\(query)")
            }
            #expect(try exporter.get("/api/v1/episodes/0000000000000000").status == 404)
            #expect(try exporter.get("/api/v1/episodes/not-an-id").status == 404)
            #expect(try exporter.get("/api/v1/episodes/\(ids[0])?x=1").status == 404)
            #expect(try exporter.get("/api/v1/episodes", method: "POST").status == 405)
            #expect(try exporter.get("/api/v1/episodes", method: "DELETE").status == 405)

            // The CLI by --url prints what it prints by --path (read-only: the file is unchanged).
            let url = try Shell.run([ExporterProcess.binary, "episodes", "--url", "http://127.0.0.1:\(exporter.port)", "--datname", "app"])
            #expect(url.status == 0, "\(url.output)")
            #expect(url.output.contains("Episode \(ids[0]) in database app (target prod)"))
            #expect(url.output.contains("ALTER ROLE app IN DATABASE app SET idle_in_transaction_session_timeout = '1min';"))
            #expect(!url.output.contains(ids[3]))
            _ = try exporter.terminate()
            let before = try F.bytes(path)
            let byPath = try Shell.run([ExporterProcess.binary, "episodes", "--path", path, "--datname", "app"])
            #expect(byPath.output == url.output)
            let json = try Shell.run([ExporterProcess.binary, "episodes", "--path", path, "--id", ids[0], "--format", "json"])
            let decoded = try JSONDecoder().decode([EpisodeRecord].self, from: Data(json.output.utf8))
            #expect(decoded == [records[0]])
            #expect(try F.bytes(path) == before)
            // SQLite's own -wal and -shm beside a WAL store, which any reader may create; nothing else.
            let entries = try F.entries(directory)
            #expect(Set(entries).isSubset(of: ["episodes.db", "episodes.db-wal", "episodes.db-shm"]), "\(entries)")
        }

        @Test func apiIsBehindTheSameTLSAndAuthAsMetrics() throws {
            let tls = try TLSFixture.get()
            let directory = try F.directory()
            defer { F.remove(directory) }
            let path = directory + "/episodes.db"
            let records = try Self.fill(path)
            let config = try tls.webConfig(tls.mutualTLSAndBasicAuth)
            let exporter = try ExporterProcess([
                "--dsn", cluster.dsn(), "--episodes.path", path, "--web.config.file", config,
            ])
            defer { _ = try? exporter.terminate() }
            let url = "https://127.0.0.1:\(exporter.port)/api/v1/episodes"
            let client = ["--cert", tls.path("client.crt"), "--key", tls.path("client.key")]
            #expect(try tls.curl(url) == 403)
            #expect(try tls.curl(url, client) == 401)
            #expect(try tls.curl(url, client + ["-u", "prometheus:\(TLSFixture.password)"]) == 200)
            #expect(try tls.curl("http://127.0.0.1:\(exporter.port)/api/v1/episodes") == 0)

            let passwordFile = tls.path("password-\(UUID().uuidString)")
            try TLSFixture.password.write(toFile: passwordFile, atomically: true, encoding: .utf8)
            let base = [
                ExporterProcess.binary, "episodes", "--url", "https://127.0.0.1:\(exporter.port)", "--http.ca-file", tls.path("ca.crt"),
                "--http.cert-file", tls.path("client.crt"), "--http.key-file", tls.path("client.key"), "--format", "json",
            ]
            let good = try Shell.run(base + ["--http.username", "prometheus", "--http.password-file", passwordFile])
            #expect(good.status == 0, "\(good.output)")
            #expect(try JSONDecoder().decode([EpisodeRecord].self, from: Data(good.output.utf8)).map(\.id) == records.reversed().map(\.id))
            let wrong = try Shell.run(base + ["--http.username", "nobody", "--http.password-file", passwordFile])
            #expect(wrong.status != 0)
            #expect(wrong.output.contains("Error: --url: the exporter answered 401"), "\(wrong.output)")
            #expect(!wrong.output.contains(TLSFixture.password))
            let byEnvironment = try ChildProcess(
                base + ["--http.username", "prometheus"],
                environment: ProcessInfo.processInfo.environment.merging(["PG_LOCK_EXPORTER_HTTP_PASSWORD": TLSFixture.password]) { $1 })
            #expect(byEnvironment.wait(timeout: 30) == 0, "\(byEnvironment.output)")
        }

        @Test func badCLIInputIsOneLine() throws {
            let directory = try F.directory()
            defer { F.remove(directory) }
            let notAStore = directory + "/other.db"
            try F.write(Array("SQLite format 3\u{0}".utf8) + [UInt8](repeating: 0, count: 100), to: notAStore)
            let before = try F.bytes(notAStore)
            let cases: [([String], String)] = [
                (["--since", "yesterday", "--path", notAStore], "--since: must be an RFC 3339 time (2026-12-05T03:00:00Z) or a duration ago (1h), not \"yesterday\""),
                (["--format", "yaml", "--path", notAStore], "The value 'yaml' is invalid for '--format <format>'"),
                (["--url", "ftp://example.com"], "--url: ftp://example.com: only http:// and https:// URLs"),
                (["--url", "http://user:secret@127.0.0.1:1"], "--url: the URL carries credentials"),
                (["--url", "http://127.0.0.1:1"], "--url: http://127.0.0.1:1/api/v1/episodes?limit=100: Couldn't connect to server"),
                (["--path", directory + "/missing.db"], "--path: episode store \(directory)/missing.db: No such file or directory"),
                (["--path", notAStore], "--path: episode store \(notAStore):"),
                (["--path", notAStore, "--url", "http://127.0.0.1:1"], "give one of --url (a running exporter) or --path (a store file)"),
                (["--path", notAStore, "--id", "xyz"], "--id: an episode id is 16 lowercase hex digits, not \"xyz\""),
                (["--path", notAStore, "--limit", "0"], "--limit: must be a whole number from 1 to 1000, not \"0\""),
            ]
            for (arguments, line) in cases {
                let run = try Shell.run([ExporterProcess.binary, "episodes"] + arguments)
                #expect(run.status != 0, "\(arguments)")
                #expect(run.output.contains(line), "\(arguments): \(run.output)")
                #expect(!run.output.contains("secret"))
            }
            #expect(try F.bytes(notAStore) == before)
            #expect(try F.entries(directory) == ["other.db"])
        }
    }
}
