import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// A known password given every way the tools accept it never shows in any output: logs,
    /// scrapes, landing pages, `check`, `remediate`, the audit log, errors.
    @Suite struct SecretsIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        static let password = "Sup3r-S3cret-PW"

        @Test func theKnownPasswordAppearsNowhere() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database) + " password=\(Self.password)"
            let uri = "postgresql://postgres:\(Self.password)@127.0.0.1:1/app?connect_timeout=2"
            let audit = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: audit) }
            var outputs: [(String, String)] = []

            let exporter = try ExporterProcess(["--dsn", dsn, "--log.level", "debug"])
            outputs.append(("serve scrape", try exporter.get("/metrics").body))
            outputs.append(("serve landing", try exporter.get("/").body))
            let downExporter = try ExporterProcess(["--dsn", uri, "--log.format", "json", "--log.level", "debug"])
            outputs.append(("serve scrape (down)", try downExporter.get("/metrics").body))
            outputs.append(("serve landing (down)", try downExporter.get("/").body))
            for args in [
                ["check", "--dsn", dsn], ["check", "--dsn", dsn, "--format", "json"], ["check", "--dsn", uri],
                ["remediate", "--dsn", dsn, "--min-idle", "0s"], ["remediate", "--dsn", dsn, "--min-idle", "0s", "--format", "json"],
                ["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--audit-log", audit], ["remediate", "--dsn", uri],
                ["--dsn", "host=x password \(Self.password)"],
            ] {
                outputs.append((args.joined(separator: " ").replacingOccurrences(of: Self.password, with: "***"), try runCLI(args).output))
            }
            outputs.append(("audit log", try String(contentsOfFile: audit, encoding: .utf8)))
            let service = try ExporterProcess(["remediate", "--dsn", dsn, "--listen", "127.0.0.1:0", "--log.level", "debug"])
            outputs.append(("remediator metrics", try service.get("/metrics").body))
            outputs.append(("remediator landing", try service.get("/").body))
            _ = try exporter.terminate()
            _ = try service.terminate()
            outputs.append(("serve log", exporter.log))
            outputs.append(("serve log (down)", downExporter.log))
            outputs.append(("remediator log", service.log))

            #expect(outputs.count == 18)
            for (name, text) in outputs {
                #expect(!text.contains(Self.password), "\(name) shows the password")
            }
            // The outputs are real: the audit log recorded the termination, the scrape the incident.
            #expect(outputs.first { $0.0 == "audit log" }?.1.contains("\"result\":\"terminated\"") == true)
            #expect(outputs.first { $0.0 == "serve scrape" }?.1.contains("pg_blocked_sessions{datname=\"\(incident.database)\"} 2") == true)
        }
    }
}
