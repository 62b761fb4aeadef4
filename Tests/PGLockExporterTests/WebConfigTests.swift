import Foundation
import Testing

@testable import PGLockExporter

@Suite struct WebConfigTests {
    let tls: TLSFixture
    init() throws { tls = try TLSFixture.get() }

    func load(_ yaml: String) throws -> WebConfig { try WebConfig.load(path: try tls.webConfig(yaml)) }

    func error(_ yaml: String) throws -> String {
        let file = try tls.webConfig(yaml)
        do {
            _ = try WebConfig.load(path: file)
            return "no error"
        } catch {
            return error.description.replacingOccurrences(of: file, with: "FILE")
        }
    }

    @Test func readsTLSWithClientVerificationAndUsers() throws {
        let config = try load(
            """
            tls_server_config:
              cert_file: \(tls.path("server.crt"))
              key_file: \(tls.path("server.key"))
              client_ca_file: \(tls.path("ca.crt"))
              client_auth_type: RequireAndVerifyClientCert
              min_version: TLS13
            basic_auth_users:
              prometheus: '\(TLSFixture.bcryptHash)'
            """)
        #expect(config.clientAuth == .requireAndVerify)
        #expect(config.tls?.priorities == "NORMAL:-VERS-ALL:+VERS-TLS1.3")
        #expect(config.tls?.clientCAPEM != nil)
        #expect(config.basicAuthUsers == ["prometheus": TLSFixture.bcryptHash])
    }

    /// The flow mapping people paste from the exporter-toolkit docs (and Helm's `toYaml` of a
    /// one-entry map) loads; the subset parser before libyaml refused it.
    @Test func flowMappingOfUsersLoads() throws {
        let config = try load("basic_auth_users: {prometheus: '\(TLSFixture.bcryptHash)'}\nhttp_server_config: {}\n")
        #expect(config.basicAuthUsers == ["prometheus": TLSFixture.bcryptHash])
        #expect(config.tls == nil)
    }

    @Test func emptyFileConfiguresNothing() throws {
        let config = try load("")
        #expect(config.tls == nil && config.basicAuthUsers.isEmpty)
    }

    @Test func everyMistakeNamesFileFieldAndProblem() throws {
        #expect(try error("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /x.key\n")
            == "web config FILE: tls_server_config.cert_file: cannot read /nonexistent.crt: No such file or directory")
        #expect(try error("tls_server_config:\n  key_file: \(tls.path("server.key"))\n")
            == "web config FILE: tls_server_config.cert_file: required")
        #expect(try error("tls_server_config:\n  cert_file: \(tls.path("server.key"))\n  key_file: \(tls.path("server.key"))\n")
            == "web config FILE: tls_server_config.cert_file: not a PEM certificate")
        #expect(try error("basic_auth_users:\n  prometheus: plaintext\n")
            == "web config FILE: basic_auth_users.prometheus: expected a bcrypt hash ($2y$... or $2b$...)")
        #expect(try error("basic_auth_users:\n  prometheus: '$2y$10$tooshort'\n")
            == "web config FILE: basic_auth_users.prometheus: not a valid bcrypt hash")
        #expect(try error("tls_config: {}\n") == "web config FILE: tls_config: unknown key")
        #expect(try error("tls_server_config:\n  certfile: x\n") == "web config FILE: tls_server_config.certfile: unknown key")
        #expect(try error("tls_server_config:\n  cert_file: \(tls.path("server.crt"))\n  key_file: \(tls.path("server.key"))\n  client_auth_type: RequireAndVerifyClientCert\n")
            == "web config FILE: tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert")
        #expect(try error("tls_server_config:\n  cert_file: \(tls.path("server.crt"))\n  key_file: \(tls.path("server.key"))\n  min_version: TLS99\n")
            == "web config FILE: tls_server_config.min_version: \"TLS99\" is not one of TLS10, TLS11, TLS12, TLS13")
        let unclosed = try error("[1, 2")
        #expect(unclosed == "web config FILE: not valid YAML (line 2: did not find expected ',' or ']' (while parsing a flow sequence at line 1))")
        #expect(try error("basic_auth_users:\n  a: 1\n  a: 2\n") == "web config FILE: not valid YAML (line 3: duplicate key \"a\")")
        #expect(try error("basic_auth_users: [prometheus]\n") == "web config FILE: basic_auth_users: expected a mapping of user names to bcrypt hashes")
        #expect(try error("- a\n- b\n") == "web config FILE: expected a mapping at the top level")
        #expect(try error("basic_auth_users: {}\n") == "no error")
    }

    /// Found by the web-config fuzz target (Fuzz/corpus/web-config/regression-bcrypt-cost-18):
    /// a hash of cost 18 held start-up for 12 s in crypt_r, and every request with credentials
    /// would have paid the same. Refused before crypt_r runs.
    @Test func refusesBcryptCostThatStallsRequests() throws {
        let costly = "$2y$18$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"
        #expect(try error("basic_auth_users:\n  prometheus: '\(costly)'\n")
            == "web config FILE: basic_auth_users.prometheus: bcrypt cost 18 is over 14: every request would spend seconds checking it (htpasswd -nBC 10 NAME)")
    }

    /// Random mutations of a valid file never crash the parser; each either loads or says why.
    @Test func mutatedFilesNeverCrash() throws {
        let valid = Array(
            """
            tls_server_config:
              cert_file: \(tls.path("server.crt"))
              key_file: \(tls.path("server.key"))
            basic_auth_users:
              prometheus: '\(TLSFixture.bcryptHash)'
            """.utf8)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: at)
                default: bytes.insert(bytes[Int.random(in: 0..<bytes.count, using: &generator)], at: at)
                }
            }
            let file = try tls.webConfig(String(decoding: bytes, as: UTF8.self))
            do { _ = try WebConfig.load(path: file) } catch { #expect(error.description.hasPrefix("web config \(file)")) }
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}
