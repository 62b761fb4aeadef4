import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// TLS, client certificates and basic auth on the real binary, checked with the real curl.
    @Suite struct SecurityIntegrationTests {
        let cluster: TestCluster
        let tls: TLSFixture
        init() throws {
            cluster = try TestCluster.get()
            tls = try TLSFixture.get()
        }

        var fullConfig: String { tls.mutualTLSAndBasicAuth }

        @Test func mutualTLSAndBasicAuthOnTheExporter() throws {
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--web.config.file", try tls.webConfig(fullConfig)])
            let url = "https://127.0.0.1:\(exporter.port)/metrics"
            let client = ["--cert", tls.path("client.crt"), "--key", tls.path("client.key")]
            #expect(try tls.curl(url) == 403)
            #expect(try tls.curl(url, ["--cert", tls.path("rogue.crt"), "--key", tls.path("rogue.key")]) == 403)
            #expect(try tls.curl(url, client) == 401)
            #expect(try tls.curl(url, client + ["-u", "prometheus:wrong"]) == 401)
            #expect(try tls.curl(url, client + ["-u", "nobody:\(TLSFixture.password)"]) == 401)
            #expect(try tls.curl(url, client + ["-u", "prometheus:\(TLSFixture.password)"]) == 200)
            #expect(try tls.curl(url, client + ["-u", "prometheus:\(TLSFixture.password)", "--tls-max", "1.1"]) == 0)
            #expect(try tls.curl("http://127.0.0.1:\(exporter.port)/metrics") == 0)
            #expect(exporter.log.contains("tls=true") && exporter.log.contains("basic_auth=true"))
            #expect(!exporter.log.contains(TLSFixture.bcryptHash))
        }

        @Test func webhookKeepsItsBearerTokenBehindTLSWhileBasicAuthGuardsMetrics() throws {
            let token = "tok-\(UUID().uuidString)"
            let tokenFile = tls.path("token-\(UUID().uuidString)")
            try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let config = try tls.webConfig(
                """
                tls_server_config:
                  cert_file: \(tls.path("server.crt"))
                  key_file: \(tls.path("server.key"))
                basic_auth_users:
                  prometheus: '\(TLSFixture.bcryptHash)'
                """)
            let service = try ExporterProcess([
                "remediate", "--dsn", cluster.dsn(), "--listen", "127.0.0.1:0", "--webhook.token-file", tokenFile,
                "--web.config.file", config,
            ])
            let base = "https://127.0.0.1:\(service.port)"
            #expect(try tls.curl("\(base)/metrics") == 401)
            #expect(try tls.curl("\(base)/metrics", ["-u", "prometheus:\(TLSFixture.password)"]) == 200)
            let body = "{\"version\":\"4\",\"status\":\"resolved\",\"alerts\":[]}"
            #expect(try tls.curl("\(base)/webhook/alertmanager", ["-X", "POST", "-d", body]) == 401)
            #expect(try tls.curl("\(base)/webhook/alertmanager", ["-X", "POST", "-d", body, "-H", "Authorization: Bearer \(token)"]) == 200)
        }

        @Test func aBrokenWebConfigStopsStartUpNamingTheField() throws {
            let config = try tls.webConfig("tls_server_config:\n  cert_file: /missing.crt\n  key_file: /missing.key\n")
            let exporter = try ExporterProcess(["--dsn", cluster.dsn(), "--web.config.file", config], waitForListening: false)
            #expect(try exporter.waitForExit() == 2)
            #expect(exporter.log.contains("web config \(config): tls_server_config.cert_file: cannot read /missing.crt"))
            #expect(!exporter.log.contains("Usage:"), "a config-file error is not a usage error")
        }
    }
}
