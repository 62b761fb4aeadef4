import CCrypt

/// `--web.config.file`, in the format of the Prometheus exporter toolkit that Prometheus users
/// already have: `tls_server_config` (served by libmicrohttpd over GnuTLS) and
/// `basic_auth_users` (bcrypt hashes, checked with libcrypt's `crypt_r`).
///
/// Every problem stops start-up with the file, the field and what is wrong; an unknown key is an
/// error, so a misspelt setting never leaves an endpoint unprotected by mistake.
public struct WebConfig: Sendable {
    public enum ClientAuth: String, Sendable, CaseIterable {
        case none = "NoClientCert", request = "RequestClientCert", requireAny = "RequireAnyClientCert"
        case verifyIfGiven = "VerifyClientCertIfGiven", requireAndVerify = "RequireAndVerifyClientCert"
    }

    public var tls: TLSMaterial?
    public var clientAuth: ClientAuth = .none
    /// user → bcrypt hash
    public var basicAuthUsers: [String: String] = [:]

    public init() {}

    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The highest bcrypt cost accepted: each step doubles the work of every authenticated
    /// request; cost 12 takes about 0.25 s of CPU here, 14 about 1 s, 18 about 12 s.
    static let maxBcryptCost = 14

    static let minVersions = ["TLS10": "+VERS-TLS1.0:+VERS-TLS1.1:+VERS-TLS1.2:+VERS-TLS1.3", "TLS11": "+VERS-TLS1.1:+VERS-TLS1.2:+VERS-TLS1.3",
                              "TLS12": "+VERS-TLS1.2:+VERS-TLS1.3", "TLS13": "+VERS-TLS1.3"]

    public static func load(path: String) throws(LoadError) -> WebConfig {
        let text: String
        do { text = try TextFile.read(path) } catch { throw LoadError(description: "web config \(path): \(error.reason)") }
        return try parse(text, path: path)
    }

    /// Parses the file's text; `path` names it in errors and `readFile` reads the files it names
    /// (`cert_file`, `key_file`, `client_ca_file`). The fuzz target passes a reader of its own.
    public static func parse(
        _ text: String, path: String,
        readFile: (String) throws(TextFile.ReadError) -> String = { path throws(TextFile.ReadError) in try TextFile.read(path) }
    ) throws(LoadError) -> WebConfig {
        func fail(_ field: String?, _ problem: String) -> LoadError {
            LoadError(description: "web config \(path): " + (field.map { "\($0): " } ?? "") + problem)
        }
        let root: ConfigYAML
        do { root = try ConfigYAML.parse(text) } catch { throw fail(nil, "not valid YAML (\(error))") }
        var config = WebConfig()  // an empty file configures nothing
        guard let top = root.mapping else { throw fail(nil, "expected a mapping at the top level") }
        for (key, value) in top {
            switch key {
            case "tls_server_config":
                try config.readTLS(value, readFile: readFile, fail: fail)
            case "basic_auth_users":
                guard let users = value.mapping else { throw fail(key, "expected a mapping of user names to bcrypt hashes") }
                for (name, hash) in users {
                    guard let hash = hash.string, hash.hasPrefix("$2") else {
                        throw fail("\(key).\(name)", "expected a bcrypt hash ($2y$... or $2b$...)")
                    }
                    // Checked before crypt_r runs: a cost of 18 took 12 s here, and every request
                    // with credentials pays it (found by the web-config fuzz target).
                    let cost = hash.split(separator: "$", omittingEmptySubsequences: false).dropFirst(2).first.flatMap { Int($0) }
                    if let cost, cost > Self.maxBcryptCost {
                        throw fail("\(key).\(name)", "bcrypt cost \(cost) is over \(Self.maxBcryptCost): every request would spend seconds checking it (htpasswd -nBC 10 NAME)")
                    }
                    guard ccrypt_verify("", hash) != -1 else { throw fail("\(key).\(name)", "not a valid bcrypt hash") }
                    config.basicAuthUsers[name] = hash
                }
            case "http_server_config":
                guard value.mapping?.count ?? 0 == 0 else { throw fail(key, "not supported by pg_lock_exporter") }
            default:
                throw fail(key, "unknown key")
            }
        }
        return config
    }

    private mutating func readTLS(
        _ node: ConfigYAML, readFile: (String) throws(TextFile.ReadError) -> String, fail: (String?, String) -> LoadError
    ) throws(LoadError) {
        let prefix = "tls_server_config"
        guard let map = node.mapping else { throw fail(prefix, "expected a mapping") }
        var fields: [String: String] = [:]
        for (name, value) in map {
            switch name {
            case "cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "cert", "key":
                guard let text = value.string else { throw fail("\(prefix).\(name)", "expected a string") }
                fields[name] = text
            case "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "client_allowed_sans":
                throw fail("\(prefix).\(name)", "not supported by pg_lock_exporter")
            default:
                throw fail("\(prefix).\(name)", "unknown key")
            }
        }
        func pem(_ file: String, _ inline: String) throws(LoadError) -> String? {
            if let text = fields[inline] { return text }
            guard let path = fields[file] else { return nil }
            do { return try readFile(path) } catch { throw fail("\(prefix).\(file)", "cannot read \(path): \(error.reason)") }
        }
        guard let cert = try pem("cert_file", "cert") else { throw fail("\(prefix).cert_file", "required") }
        guard let key = try pem("key_file", "key") else { throw fail("\(prefix).key_file", "required") }
        guard cert.contains("-----BEGIN CERTIFICATE-----") else { throw fail("\(prefix).cert_file", "not a PEM certificate") }
        guard key.contains("PRIVATE KEY-----") else { throw fail("\(prefix).key_file", "not a PEM private key") }
        let clientCA = try pem("client_ca_file", "client_ca")
        if let clientCA, !clientCA.contains("-----BEGIN CERTIFICATE-----") {
            throw fail("\(prefix).client_ca_file", "not a PEM certificate")
        }
        if let auth = fields["client_auth_type"] {
            guard let parsed = ClientAuth(rawValue: auth) else {
                throw fail("\(prefix).client_auth_type", "\"\(auth)\" is not one of \(ClientAuth.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            clientAuth = parsed
        } else if clientCA != nil {
            clientAuth = .requireAndVerify
        }
        if clientAuth != .none && clientCA == nil {
            throw fail("\(prefix).client_ca_file", "required with client_auth_type \(clientAuth.rawValue)")
        }
        let minVersion = fields["min_version"] ?? "TLS12"
        guard let versions = Self.minVersions[minVersion] else {
            throw fail("\(prefix).min_version", "\"\(minVersion)\" is not one of TLS10, TLS11, TLS12, TLS13")
        }
        tls = TLSMaterial(
            certificatePEM: cert, keyPEM: key, clientCAPEM: clientAuth == .none ? nil : clientCA,
            priorities: "NORMAL:-VERS-ALL:\(versions)")
    }
}
