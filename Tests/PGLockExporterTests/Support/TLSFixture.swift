import Foundation

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the
/// real `openssl`, plus a bcrypt hash (cost 5) of `password` made once with Python's crypt.
final class TLSFixture: Sendable {
    let directory: String
    static let password = "scrape-pass"
    /// bcrypt of `password`, as `htpasswd -B` or Python's crypt would produce it.
    static let bcryptHash = "$2b$05$z6nkGq/QrI6M2dVg52rfYeHjBl4kkuYt0VmtX4zziAcLPpiiEKfZi"

    private static let shared = Result { try TLSFixture() }
    static func get() throws -> TLSFixture { try shared.get() }

    private init() throws {
        directory = NSTemporaryDirectory() + "pg-lock-tls-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=prometheus
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2
            openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.crt -subj /CN=rogue -days 2
            """
        let result = try Shell.run(["/bin/sh", "-c", script])
        guard result.status == 0 else { throw TestFailure("openssl failed: \(result.output)") }
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// A web config asking for TLS with a verified client certificate and basic auth
    /// (`prometheus` / `password`).
    var mutualTLSAndBasicAuth: String {
        """
        tls_server_config:
          cert_file: \(path("server.crt"))
          key_file: \(path("server.key"))
          client_ca_file: \(path("ca.crt"))
          client_auth_type: RequireAndVerifyClientCert
        basic_auth_users:
          prometheus: '\(Self.bcryptHash)'
        """
    }

    /// Writes a web config file and returns its path.
    func webConfig(_ yaml: String) throws -> String {
        let file = path("web-\(UUID().uuidString).yml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// `curl` against the server: returns the HTTP status (0 when TLS or the connection failed).
    func curl(_ url: String, _ extra: [String] = []) throws -> Int {
        let result = try Shell.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", path("ca.crt")] + extra + [url])
        return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
