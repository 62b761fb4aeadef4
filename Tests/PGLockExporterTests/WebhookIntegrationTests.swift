import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// `remediate --listen` as a real process, driven by webhook requests, against the incident.
    @Suite struct WebhookIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        static func payload(datname: String, status: String = "firing", startsAt: String = "2026-11-26T09:00:00Z") -> String {
            """
            {"version":"4","status":"\(status)","receiver":"remediator","groupLabels":{},"commonLabels":{},"externalURL":"",
             "alerts":[{"status":"\(status)","labels":{"alertname":"PostgresBlockerIdleInTransaction","datname":"\(datname)"},
                        "annotations":{},"startsAt":"\(startsAt)","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f00d"}]}
            """
        }

        func tokenFile(_ token: String) throws -> String {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)").path
            try (token + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        func post(_ service: ExporterProcess, _ body: String, token: String?) throws -> HTTPReply {
            try HTTPClient.request(
                port: service.port, method: "POST", path: "/webhook/alertmanager",
                headers: token.map { ["Authorization": "Bearer \($0)", "Content-Type": "application/json"] } ?? [:], body: body)
        }

        @Test func firingAlertTerminatesTheRootOnceAndCountsIt() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let token = "t0ken-\(UUID().uuidString)"
            let file = try tokenFile(token)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let service = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(database: incident.database), "--listen", "127.0.0.1:0",
                "--webhook.token-file", file, "--execute", "--min-idle", "0s",
            ])
            let body = Self.payload(datname: incident.database)

            #expect(try post(service, body, token: nil).status == 401)
            #expect(try post(service, body, token: "wrong").status == 401)
            #expect(try post(service, "{\"version\":\"4\"", token: token).status == 400)
            #expect(try post(service, String(repeating: "x", count: 2 << 20), token: token).status == 413)
            #expect(try post(service, Self.payload(datname: incident.database, status: "resolved"), token: token).status == 200)
            #expect(try Incident.waitFor(cluster.connect(database: incident.database), "worker", state: "idle in transaction") == [incident.holderPID])

            let accepted = try post(service, body, token: token)
            #expect(accepted.status == 202)
            try eventually("the migration to complete") {
                try cluster.connect().execute("SELECT state FROM pg_stat_activity WHERE pid = $1::int", [String(incident.migrationPID)]) {
                    $0.rowCount == 1 ? $0.string(0, 0) : nil
                } == "idle"
            }
            let redelivered = try post(service, body, token: token)
            #expect(redelivered.status == 200)
            #expect(redelivered.body.contains("duplicate"))

            let metrics = try Exposition(parsing: try service.get("/metrics").body)
            #expect(metrics.value("pg_lock_remediator_terminations_total") == 1)
            #expect(metrics.value("pg_lock_remediator_termination_failures_total") == 0)
            #expect(metrics.value("pg_lock_remediator_decisions_total", ["action": "terminate", "reason": "root_blocker", "dry_run": "false"]) == 1)
            for (result, count) in [("unauthorized", 2.0), ("bad_request", 1), ("too_large", 1), ("ignored", 1), ("accepted", 1), ("duplicate", 1)] {
                #expect(metrics.value("pg_lock_remediator_webhook_requests_total", ["result": result]) == count, "\(result)")
            }
            #expect((metrics.value("pg_lock_remediator_last_action_timestamp_seconds") ?? 0) > 1_700_000_000)
            try expectPromtoolAccepts(try service.get("/metrics").body)
            #expect(!service.log.contains(token))
            #expect(try service.terminate() == 0)
        }

        @Test func dryRunServiceChangesNothing() throws {
            let incident = try Incident(cluster: cluster, readers: 0)
            defer { incident.end() }
            let service = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(database: incident.database), "--listen", "127.0.0.1:0", "--min-idle", "0s",
            ])
            #expect(try post(service, Self.payload(datname: incident.database), token: nil).status == 202)
            try eventually("the dry-run decision") {
                try Exposition(parsing: try service.get("/metrics").body)
                    .value("pg_lock_remediator_decisions_total", ["action": "terminate", "reason": "root_blocker", "dry_run": "true"]) == 1
            }
            #expect(try Incident.waitFor(cluster.connect(database: incident.database), "worker", state: "idle in transaction") == [incident.holderPID])
            #expect(service.log.contains("WOULD TERMINATE pid \(incident.holderPID)"))
        }

        @Test func anAlertAboutAnotherDatabaseIsIgnoredUnlessAllDatabases() throws {
            let incident = try Incident(cluster: cluster, readers: 0)
            defer { incident.end() }
            let service = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(database: "postgres"), "--listen", "127.0.0.1:0", "--execute", "--min-idle", "0s",
            ])
            #expect(try post(service, Self.payload(datname: incident.database), token: nil).status == 202)
            try eventually("the pass to decline") { service.log.contains("alert ignored: it is about another database") }
            #expect(try Incident.waitFor(cluster.connect(database: incident.database), "worker", state: "idle in transaction") == [incident.holderPID])
            #expect(try Exposition(parsing: try service.get("/metrics").body).value("pg_lock_remediator_terminations_total") == 0)

            let anyDatabase = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(database: "postgres"), "--listen", "127.0.0.1:0", "--execute", "--min-idle", "0s",
                "--all-databases",
            ])
            #expect(try post(anyDatabase, Self.payload(datname: incident.database), token: nil).status == 202)
            try eventually("the root blocker in the alert's database to be terminated") {
                try Exposition(parsing: try anyDatabase.get("/metrics").body).value("pg_lock_remediator_terminations_total") == 1
            }
        }

        @Test func refusesToExecuteOnANetworkAddressWithoutAToken() throws {
            let service = try ExporterProcess(
                ["remediate", "--dsn", cluster.dsn(), "--listen", ":0", "--execute"], waitForListening: false)
            #expect(try service.waitForExit() == 2)
            #expect(service.log.contains("--webhook.token-file: required with --execute on a non-loopback --listen address"))
            let empty = try tokenFile("")
            defer { try? FileManager.default.removeItem(atPath: empty) }
            let emptyToken = try ExporterProcess(
                ["remediate", "--dsn", cluster.dsn(), "--listen", ":0", "--execute", "--webhook.token-file", empty], waitForListening: false)
            #expect(try emptyToken.waitForExit() == 2)
            #expect(emptyToken.log.contains("the file is empty"))
        }
    }
}
