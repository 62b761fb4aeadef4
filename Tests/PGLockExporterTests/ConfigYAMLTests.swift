import Foundation
import Testing

@testable import PGLockExporter

@Suite struct ConfigYAMLTests {
    @Test func nestedMappingsScalarsAndComments() throws {
        let yaml = """
            # the web config
            tls_server_config:
              cert_file: /etc/tls.crt   # trailing comment
              key_file: "/etc/tls key.pem"
              min_version: 'TLS13'
            basic_auth_users:
              prometheus: '$2b$05$z6nk#not-a-comment'
              "quoted key": "a \\"b\\" \\\\ c\\n"
            empty:
            flow: {}
            list:
              - one
              - 'two'
            """
        let doc = try ConfigYAML.parse(yaml)
        let top = try #require(doc.mapping)
        #expect(top.map(\.key) == ["tls_server_config", "basic_auth_users", "empty", "flow", "list"])
        #expect(top[0].value == .mapping([
            ("cert_file", .scalar("/etc/tls.crt")), ("key_file", .scalar("/etc/tls key.pem")), ("min_version", .scalar("TLS13")),
        ]))
        #expect(top[1].value == .mapping([("prometheus", .scalar("$2b$05$z6nk#not-a-comment")), ("quoted key", .scalar("a \"b\" \\ c\n"))]))
        #expect(top[2].value == .null)
        #expect(top[3].value == .mapping([]))
        #expect(top[4].value == .sequence([.scalar("one"), .scalar("two")]))
    }

    @Test func dsnValuesKeepTheirColonsAndEquals() throws {
        let doc = try ConfigYAML.parse("targets:\n  a:\n    dsn: postgresql://u@h:5432/db?sslmode=require\n    other: host=x port=5432 user='it''s'\n")
        let target = try #require(doc.mapping?.first?.value.mapping?.first?.value.mapping)
        #expect(target[0].value.string == "postgresql://u@h:5432/db?sslmode=require")
        #expect(target[1].value.string == "host=x port=5432 user='it''s'")
    }

    /// The forms the hand-written subset refused and Helm's `toYaml` emits: flow collections,
    /// folded and literal block scalars, and anchors with aliases.
    @Test func flowCollectionsBlockScalarsAndAliases() throws {
        let yaml = """
            basic_auth_users: {prometheus: "$2y$10$abc", grafana: '$2b$05$def'}
            ports: [9817, "9818"]
            targets:
              orders:
                dsn: >-
                  host=db1
                  dbname=orders
                  user=pg_lock_monitor
                note: |
                  line one
                  line two
              copy: &shared
                dsn: host=db2
              again: *shared
            """
        let top = try #require(try ConfigYAML.parse(yaml).mapping)
        #expect(top[0].value == .mapping([("prometheus", .scalar("$2y$10$abc")), ("grafana", .scalar("$2b$05$def"))]))
        #expect(top[1].value == .sequence([.scalar("9817"), .scalar("9818")]))
        let targets = try #require(top[2].value.mapping)
        #expect(targets[0].value == .mapping([
            ("dsn", .scalar("host=db1 dbname=orders user=pg_lock_monitor")), ("note", .scalar("line one\nline two\n")),
        ]))
        #expect(targets[1].value == .mapping([("dsn", .scalar("host=db2"))]))
        #expect(targets[2].value == targets[1].value)
    }

    @Test func onlyPlainNullWordsAreNull() throws {
        let top = try #require(try ConfigYAML.parse("a: ~\nb: null\nc: \"null\"\nd: ''\ne: 0\n").mapping)
        #expect(top.map(\.value) == [.null, .null, .scalar("null"), .scalar(""), .scalar("0")])
    }

    @Test(arguments: [
        ("a: 1\na: 2\n", "line 2: duplicate key \"a\""),
        ("a: {x: 1, x: 2}\n", "line 1: duplicate key \"x\""),
        ("a:\n    b: 1\n  c: 2\n", "line 3: did not find expected key (while parsing a block mapping at line 1)"),
        ("a: \"open\n", "line 2: found unexpected end of stream (while scanning a quoted scalar at line 1)"),
        ("a:\n\t b: 1\n", "line 2: found character that cannot start any token (while scanning for the next token)"),
        ("a: [1, 2\n", "line 2: did not find expected ',' or ']' (while parsing a flow sequence at line 1)"),
        ("a: *nowhere\n", "line 1: found undefined alias"),
        ("? [k]\n: v\n", "line 1: a key must be text, not a list, mapping or null"),
        ("a: 1\n---\nb: 2\n", "line 3: only one YAML document is allowed"),
        ("a: \u{7}\n", "line 1: control characters are not allowed"),
    ])
    func rejectsWithTheLine(yaml: String, message: String) {
        let error = #expect(throws: ConfigYAML.ParseError.self) { try ConfigYAML.parse(yaml) }
        #expect(error?.description == message)
    }

    /// Nested aliases that would expand to a billion values stop at the limit, quickly.
    @Test func aliasExpansionIsBounded() {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        let yaml = lines.joined(separator: "\n")
        let error = #expect(throws: ConfigYAML.ParseError.self) { try ConfigYAML.parse(yaml) }
        #expect(error?.problem == "more than 100000 values once aliases are expanded")
    }

    @Test func deepNestingIsRefused() {
        let yaml = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let error = #expect(throws: ConfigYAML.ParseError.self) { try ConfigYAML.parse(yaml) }
        #expect(error?.description == "line 1: nested more than 64 levels deep")
    }

    @Test func emptyDocumentIsNull() throws {
        #expect(try ConfigYAML.parse("") == .null)
        #expect(try ConfigYAML.parse("# only a comment\n---\n") == .null)
        #expect(try ConfigYAML.parse("").mapping?.isEmpty == true)
    }

    @Test func windowsLineEndingsReadLikeUnix() throws {
        let crlf = "# web config\r\nbasic_auth_users:\r\n  prometheus: '$2b$05$abc'\r\n"
        let doc = try ConfigYAML.parse(crlf)
        #expect(doc.mapping?.first?.key == "basic_auth_users")
        #expect(doc.mapping?.first?.value.mapping?.first?.value.string == "$2b$05$abc")
    }
}

/// `--config.file` read through libyaml: the forms Helm renders load, mistakes name the field.
@Suite struct TargetsConfigYAMLTests {
    func withFile<T>(_ yaml: String, _ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID().uuidString).yml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    @Test func foldedDSNAndFlowMappingsLoad() throws {
        let yaml = """
            targets:
              orders:
                dsn: >-
                  host=db1 port=5432
                  dbname=orders user=pg_lock_monitor
                password_env: ORDERS_PW
              billing: {dsn: "host=db2 dbname=billing", password_env: BILLING_PW}
            """
        let config = try withFile(yaml) { path in
            try TargetsConfig.load(path: path) { ["ORDERS_PW": "o-secret", "BILLING_PW": "b-secret"][$0] }
        }
        #expect(config.targets.map(\.name) == ["billing", "orders"])
        #expect(config.targets[0].target == .init(dsn: "host=db2 dbname=billing", password: "b-secret"))
        #expect(config.targets[1].target == .init(dsn: "host=db1 port=5432 dbname=orders user=pg_lock_monitor", password: "o-secret"))
    }

    @Test func eachTargetNamesItsPoolers() throws {
        let yaml = """
            targets:
              orders:
                dsn: "host=db1 dbname=orders"
                pgbouncers:
                  - dsn: "host=pool1 port=6432 dbname=pgbouncer user=stats"
                    password_env: POOL_PW
                  - {dsn: "host=10.0.0.6 port=6433 dbname=pgbouncer user=stats"}
              billing:
                dsn: "host=db2 dbname=billing"
            """
        let config = try withFile(yaml) { path in try TargetsConfig.load(path: path) { ["POOL_PW": "p-secret"][$0] } }
        #expect(config.targets[0].target.pgbouncers.isEmpty)
        let poolers = config.targets[1].target.pgbouncers
        #expect(poolers.map(\.name) == ["pool1:6432", "10.0.0.6:6433"])
        #expect(poolers.map(\.password) == ["p-secret", nil])
    }

    @Test(arguments: [
        ("targets:\n  a:\n    dsn: [host=x]\n", "config file FILE: targets.a.dsn: expected a string"),
        ("targets:\n  a: {dsn: x, dsn: y}\n", "config file FILE: not valid YAML (line 2: duplicate key \"dsn\")"),
        ("targets: [a, b]\n", "config file FILE: targets: expected a mapping of names to targets"),
        ("- targets\n", "config file FILE: expected a mapping with a \"targets\" key"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: host=p\n", "config file FILE: targets.a.pgbouncers: expected a list of poolers, each with a dsn"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [x]\n", "config file FILE: targets.a.pgbouncers[0]: expected a mapping with a dsn"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{password_env: P}]\n", "config file FILE: targets.a.pgbouncers[0].dsn: required"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{dsn: \"host=p dbname=app\"}]\n",
         "config file FILE: targets.a.pgbouncers[0].dsn: a pooler's DSN names its admin console: dbname=pgbouncer"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{dsn: \"host=p dbname=pgbouncer password=hunter2\"}]\n",
         "config file FILE: targets.a.pgbouncers[0].dsn: put the pooler's password in a password file or the environment, not in its DSN"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{dsn: \"host=p dbname=pgbouncer\", password_env: NOT_SET}]\n",
         "config file FILE: targets.a.pgbouncers[0].password_env: environment variable NOT_SET is not set"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{dsn: \"host=p dbname=pgbouncer\"}, {dsn: \"dbname=pgbouncer host=p\"}]\n",
         "config file FILE: targets.a.pgbouncers[1].dsn: p:5432 is named twice"),
        ("targets:\n  a:\n    dsn: dbname=x\n    pgbouncers: [{dsn: \"host=p dbname=pgbouncer\", port: 1}]\n",
         "config file FILE: targets.a.pgbouncers[0].port: unknown key"),
    ])
    func mistakesNameTheField(yaml: String, message: String) throws {
        let description = try withFile(yaml) { path in
            do throws(TargetsConfig.LoadError) {
                _ = try TargetsConfig.load(path: path) { _ in nil }
                return "no error"
            } catch {
                return error.description.replacingOccurrences(of: path, with: "FILE")
            }
        }
        #expect(description == message)
    }
}
