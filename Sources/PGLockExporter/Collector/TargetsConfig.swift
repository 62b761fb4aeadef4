/// `--config.file`: named targets for the multi-target exporter pattern (`/probe?target=NAME`).
///
/// ```yaml
/// targets:
///   orders:
///     dsn: "host=db1 dbname=orders user=pg_lock_monitor"
///     password_file: /run/secrets/orders_pw     # or password_env: ORDERS_PW
///     pgbouncers:                               # optional: the poolers in front of it
///       - dsn: "host=pool1 port=6432 dbname=pgbouncer user=pg_lock_monitor"
///         password_file: /run/secrets/pool_pw
/// ```
/// Passwords never travel in the DSN, the URL or the scrape request.
public struct TargetsConfig: Sendable {
    public struct Target: Sendable, Equatable {
        public var dsn: String
        public var password: String?
        /// The PgBouncers in front of this target (`pgbouncers:`).
        public var pgbouncers: [PgBouncerEndpoint] = []
    }

    /// Target name → target, in name order.
    public var targets: [(name: String, target: Target)]

    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Parses the file. `environment` resolves `password_env` (the process environment in production).
    public static func load(path: String, environment: (String) -> String?) throws(LoadError) -> TargetsConfig {
        let text: String
        do { text = try TextFile.read(path) } catch { throw LoadError(description: "config file \(path): \(error.reason)") }
        return try parse(text, path: path, environment: environment)
    }

    /// Parses the file's text; `path` names it in errors, `readSecret` reads `password_file`s
    /// (the fuzz target passes a reader of its own).
    public static func parse(
        _ text: String, path: String, environment: (String) -> String?,
        readSecret: (String) throws(TextFile.ReadError) -> String = { path throws(TextFile.ReadError) in try TextFile.secret(path) }
    ) throws(LoadError) -> TargetsConfig {
        func fail(_ field: String?, _ problem: String) -> LoadError {
            // Keys and values come from the file: the message stays one terminal-safe line
            // (found by the web-config fuzz target: a key with a newline in it).
            LoadError(description: TerminalText.safe("config file \(path): " + (field.map { "\(TerminalText.excerpt($0)): " } ?? "") + problem))
        }
        let node: ConfigYAML
        do { node = try ConfigYAML.parse(text) } catch { throw fail(nil, "not valid YAML (\(error))") }
        guard let top = node.mapping, !top.isEmpty else { throw fail(nil, "expected a mapping with a \"targets\" key") }
        var result: [(String, Target)] = []
        for (key, value) in top {
            guard key == "targets" else { throw fail(key, "unknown key") }
            guard let targets = value.mapping, !targets.isEmpty else { throw fail("targets", "expected a mapping of names to targets") }
            for (name, spec) in targets {
                let field = "targets.\(name)"
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
                    throw fail(field, "target names may use letters, digits, '_', '-' and '.'")
                }
                guard let map = spec.mapping else { throw fail(field, "expected a mapping with a dsn") }
                var dsn: String?
                var password: String?
                var pgbouncers: [PgBouncerEndpoint] = []
                for (option, v) in map {
                    if option == "pgbouncers" {
                        pgbouncers = try parsePoolers(v, field: "\(field).pgbouncers", fail: fail, environment: environment, readSecret: readSecret)
                        continue
                    }
                    guard let text = v.string else { throw fail("\(field).\(option)", "expected a string") }
                    switch option {
                    case "dsn":
                        do { try ConnectionString.validate(text) } catch { throw fail("\(field).dsn", error.message) }
                        if (try? ConnectionString.parse(text))?.contains(where: { $0.key == "password" }) == true {
                            throw fail("\(field).dsn", "put the password in password_file or password_env, not in the DSN")
                        }
                        dsn = text
                    case "password_file":
                        do { password = try readSecret(text) } catch { throw fail("\(field).password_file", error.description) }
                    case "password_env":
                        guard let value = environment(text), !value.isEmpty else {
                            throw fail("\(field).password_env", "environment variable \(text) is not set")
                        }
                        password = value
                    default:
                        throw fail("\(field).\(option)", "unknown key")
                    }
                }
                guard let dsn else { throw fail("\(field).dsn", "required") }
                result.append((name, Target(dsn: dsn, password: password, pgbouncers: pgbouncers)))
            }
        }
        guard !result.isEmpty else { throw fail("targets", "required") }
        return TargetsConfig(targets: result.sorted { $0.0 < $1.0 })
    }

    /// A target's `pgbouncers:`: a list of `{dsn, password_file | password_env}`, each an admin
    /// console (`dbname=pgbouncer`), no pooler twice.
    private static func parsePoolers(
        _ node: ConfigYAML, field: String, fail: (String?, String) -> LoadError, environment: (String) -> String?,
        readSecret: (String) throws(TextFile.ReadError) -> String
    ) throws(LoadError) -> [PgBouncerEndpoint] {
        guard case .sequence(let items) = node, !items.isEmpty else { throw fail(field, "expected a list of poolers, each with a dsn") }
        var endpoints: [PgBouncerEndpoint] = []
        for (position, item) in items.enumerated() {
            let itemField = "\(field)[\(position)]"
            guard let map = item.mapping, !map.isEmpty else { throw fail(itemField, "expected a mapping with a dsn") }
            var options: [String: String] = [:]
            for (option, v) in map {
                guard ["dsn", "password_file", "password_env"].contains(option) else { throw fail("\(itemField).\(option)", "unknown key") }
                guard let text = v.string else { throw fail("\(itemField).\(option)", "expected a string") }
                options[option] = text
            }
            guard let dsn = options["dsn"] else { throw fail("\(itemField).dsn", "required") }
            var password: String?
            if let file = options["password_file"] {
                do { password = try readSecret(file) } catch { throw fail("\(itemField).password_file", error.description) }
            }
            if let variable = options["password_env"] {
                guard let value = environment(variable), !value.isEmpty else {
                    throw fail("\(itemField).password_env", "environment variable \(variable) is not set")
                }
                password = value
            }
            let endpoint: PgBouncerEndpoint
            do { endpoint = try PgBouncerEndpoint(dsn: dsn, password: password) } catch { throw fail("\(itemField).dsn", error.message) }
            guard !endpoints.contains(where: { $0.name == endpoint.name }) else { throw fail("\(itemField).dsn", "\(endpoint.name) is named twice") }
            endpoints.append(endpoint)
        }
        return endpoints
    }
}
