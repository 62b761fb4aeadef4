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

    @Test(arguments: [
        ("a: 1\na: 2\n", "line 2: duplicate key \"a\""),
        ("a:\n    b: 1\n  c: 2\n", "line 3: unexpected indentation"),
        ("a: [1, 2]\n", "line 1: \"[\" (flow collections, anchors, tags, block scalars) is not supported here"),
        ("a: \"open\n", "line 1: unterminated quoted value"),
        ("a:\n\t b: 1\n", "line 2: tabs are not allowed for indentation"),
        ("just text\n", "line 1: expected \"key: value\""),
        ("a: |\n  x\n", "line 1: \"|\" (flow collections, anchors, tags, block scalars) is not supported here"),
    ])
    func rejectsWithTheLine(yaml: String, message: String) {
        let error = #expect(throws: ConfigYAML.ParseError.self) { try ConfigYAML.parse(yaml) }
        #expect(error?.description == message)
    }

    @Test func emptyDocumentIsAnEmptyMapping() throws {
        #expect(try ConfigYAML.parse("").mapping?.isEmpty == true)
        #expect(try ConfigYAML.parse("# only a comment\n---\n").mapping?.isEmpty == true)
    }
}

@Suite struct ConfigYAMLLineEndingTests {
    @Test func windowsLineEndingsReadLikeUnix() throws {
        let crlf = "# web config\r\nbasic_auth_users:\r\n  prometheus: '$2b$05$abc'\r\n"
        let doc = try ConfigYAML.parse(crlf)
        #expect(doc.mapping?.first?.key == "basic_auth_users")
        #expect(doc.mapping?.first?.value.mapping?.first?.value.string == "$2b$05$abc")
    }
}
