import PropertyBased
import Synchronization
import Testing

@testable import PGLockExporter

@Suite struct QueryTextTests {
    static func normalized(_ statement: String) -> QueryText.Result? { QueryText.render(statement) }

    // MARK: - Parsed by libpg_query

    /// `render(all:)` (one parser thread for many statements, what `/tree` uses) gives what
    /// `render` gives each: parsed, reduced by the scanner, oversized, empty, under every policy.
    @Test func renderingManyAtOnceIsRenderingEach() {
        let statements = [
            "SELECT * FROM orders WHERE id = 17", "SELECT 'it''s' /* note */ FROM t", "SELECT 'a\\' , 'b'", "not sql at all 'x",
            String(repeating: "x", count: QueryText.parserInputLimit + 1) + " 'secret'", "", "SELECT \"<script>\" FROM t -- 'c'",
        ]
        for policy in QueryText.Policy.allCases {
            #expect(QueryText.render(all: statements, policy: policy) == statements.map { QueryText.render($0, policy: policy) })
        }
        #expect(QueryText.render(all: [], policy: .normalized).isEmpty)
    }

    @Test func replacesConstantsWithParameters() {
        #expect(Self.normalized("SELECT * FROM features WHERE email = 'a@b.c'")
            == QueryText.Result(text: "SELECT * FROM features WHERE email = $1", fingerprint: "697c806cdb287ec8", reduced: false))
        #expect(Self.normalized("SELECT * FROM features LIMIT 5")?.text == "SELECT * FROM features LIMIT $1")
        #expect(Self.normalized("SELECT * FROM features LIMIT 5")?.reduced == false)
    }

    /// psql sends the statement with its terminating semicolon, and `pg_stat_activity` shows it:
    /// the normalized text leaves it out, parsed or reduced, so one code path reads the same
    /// whichever client sent it (the seed incident's `SELECT * FROM features LIMIT $1`).
    @Test func theTerminatingSemicolonIsLeftOut() {
        #expect(Self.normalized("SELECT * FROM features LIMIT 1;")?.text == "SELECT * FROM features LIMIT $1")
        #expect(Self.normalized("SELECT * FROM features LIMIT 1 ; \n")?.text == "SELECT * FROM features LIMIT $1")
        #expect(Self.normalized("SELECT 1; SELECT 'x';")?.text == "SELECT $1; SELECT $2")
        #expect(Self.normalized("SELEC * FROM features WHERE email = 'a@b.c';")
            == QueryText.Result(text: "SELEC * FROM features WHERE email = $1", fingerprint: nil, reduced: true))
        #expect(Self.normalized("SELECT * FROM features LIMIT 1;")?.fingerprint == Self.normalized("SELECT * FROM features LIMIT 2")?.fingerprint)
        #expect(QueryText.render("SELECT 1;", policy: .full)?.text == "SELECT 1;")
    }

    @Test func fingerprintGroupsStatementsThatDifferOnlyInConstants() throws {
        let a = try #require(Self.normalized("SELECT * FROM features WHERE email = 'a@b.c' LIMIT 5"))
        let b = try #require(Self.normalized("SELECT * FROM features WHERE email = 'x@y.z' LIMIT 500 /* other */"))
        let c = try #require(Self.normalized("SELECT * FROM features WHERE name = 'a@b.c' LIMIT 5"))
        #expect(a.fingerprint == b.fingerprint)
        #expect(a.fingerprint != c.fingerprint)
        #expect(a.fingerprint?.count == 16)
        #expect(a.text == b.text)
    }

    @Test func dollarQuotedBodiesAreConstants() {
        #expect(Self.normalized("SELECT $tag$body secret$tag$, $$x 'secret' $$ FROM t")?.text == "SELECT $1, $2 FROM t")
        #expect(Self.normalized("DO $$ BEGIN PERFORM 'secret'; END $$")?.text == "DO $1")
    }

    @Test func escapeStringsWithEscapedQuotes() {
        #expect(Self.normalized(#"SELECT * FROM t WHERE note = E'it\'s secret' AND x = 1"#)
            == QueryText.Result(text: "SELECT * FROM t WHERE note = $1 AND x = $2", fingerprint: Self.normalized("SELECT * FROM t WHERE note = 'a' AND x = 2")?.fingerprint, reduced: false))
        #expect(Self.normalized(#"SELECT E'\\', 'secret'"#)?.text == "SELECT $1, $2")
    }

    /// The statement's own parameters (the extended protocol shows `$1`) keep their numbers; its
    /// constants are numbered after them.
    @Test func constantsAreNumberedAfterTheStatementsOwnParameters() {
        #expect(Self.normalized("SELECT * FROM t WHERE a = $1 AND b = 'secret'")?.text == "SELECT * FROM t WHERE a = $1 AND b = $2")
        #expect(Self.normalized("SELECT * FROM t WHERE a = $1 AND b = 'secret' AND c = ")?.text == "SELECT * FROM t WHERE a = $1 AND b = $2 AND c =")
    }

    /// libpg_query keeps comments as written: a comment may carry a secret, so they go.
    @Test func commentsAreRemoved() {
        let statement = "/* email=a@b.c */ SELECT 1 /* a /* nested */ secret */ FROM t -- trailing secret\nWHERE x = 2"
        #expect(PGQueryParser.normalize(statement) == "/* email=a@b.c */ SELECT $1 /* a /* nested */ secret */ FROM t -- trailing secret\nWHERE x = $2")
        #expect(Self.normalized(statement) == QueryText.Result(
            text: "SELECT $1 FROM t\nWHERE x = $2", fingerprint: PGQueryParser.fingerprint("SELECT 1 FROM t WHERE x = 2"), reduced: false))
        #expect(Self.normalized("SELECT 1/*c*/FROM t")?.text == "SELECT $1 FROM t")
    }

    /// libpg_query, like pg_stat_statements, leaves the constants of utility statements and
    /// `UESCAPE` as written; the scanner replaces them.
    @Test(arguments: [
        ("COPY t FROM '/secret/path'", "COPY t FROM $1"),
        ("CREATE VIEW v AS SELECT 'secret'", "CREATE VIEW v AS SELECT $1"),
        ("CALL p('secret', 42)", "CALL p($1, $2)"),
        ("EXECUTE q('secret')", "EXECUTE q($1)"),
        ("NOTIFY ch, 'secret'", "NOTIFY ch, $1"),
        ("COMMENT ON TABLE t IS 'secret'", "COMMENT ON TABLE t IS $1"),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 21)", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > $1)"),
        ("ALTER SYSTEM SET x = 'secret'", "ALTER SYSTEM SET x = $1"),
        (#"SELECT U&'\0041' UESCAPE '!'"#, "SELECT $1 UESCAPE $2"),
    ])
    func constantsLibpgQueryKeepsAreReplaced(statement: String, expected: String) throws {
        let raw = try #require(PGQueryParser.normalize(statement))
        #expect(raw.contains("'") || raw.contains("21") || raw.contains("42"), "libpg_query keeps a constant in \(raw)")
        let result = try #require(Self.normalized(statement))
        #expect(result.text == expected)
        #expect(result.reduced == false)
        #expect(result.fingerprint != nil)
    }

    // MARK: - Reduced by the scanner

    /// `pg_stat_activity` cut at 1024 bytes (`track_activity_query_size`), inside a constant.
    @Test func aStatementCutAt1024BytesInsideAConstantLeaksNothingOfIt() throws {
        let marker = "QTMARK7f3a"
        let head = "SELECT * FROM features WHERE id IN (" + (1...200).map(String.init).joined(separator: ", ") + ") AND note = '"
        let full = head + String(repeating: marker + " é ", count: 200) + "'"
        let cut = Array(full.utf8.prefix(1024))
        #expect(String(decoding: cut, as: UTF8.self).contains(marker))
        let result = try #require(QueryText.render(bytes: cut))
        #expect(result == QueryText.Result(
            text: "SELECT * FROM features WHERE id IN (" + (1...200).map { "$\($0)" }.joined(separator: ", ") + ") AND note =",
            fingerprint: nil, reduced: true))
    }

    /// Cut in the middle of a two-byte character inside a constant: the invalid UTF-8 becomes
    /// U+FFFD and goes with the constant.
    @Test func aCutThroughAMultibyteCharacterLeaksNothing() throws {
        let bytes = Array("SELECT 'secret é".utf8).dropLast()
        #expect(QueryText.render(bytes: bytes) == QueryText.Result(text: "SELECT", fingerprint: nil, reduced: true))
        let invalid: [UInt8] = Array("SELECT x FROM t WHERE a = '".utf8) + [0xFF, 0xC3] + Array("secret' AND b = 1".utf8)
        #expect(QueryText.render(bytes: invalid)?.text == "SELECT x FROM t WHERE a = $1 AND b = $2")
    }

    /// Syntax newer than libpg_query's PostgreSQL 15 grammar: reduced, constants gone.
    @Test(arguments: [
        ("SELECT * FROM JSON_TABLE(jsonb '{\"email\":\"secret\"}', '$' COLUMNS (a text PATH '$.email'))",
         "SELECT * FROM JSON_TABLE(jsonb $1, $2 COLUMNS (a text PATH $3))"),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = 'secret' RETURNING *",
         "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = $1 RETURNING *"),
        ("SELECT * FROM t WHERE id = 0x5ec7e7 OR n = 1_000_000 OR m = 0o17 OR b = 0b101",
         "SELECT * FROM t WHERE id = $1 OR n = $2 OR m = $3 OR b = $4"),
    ])
    func newerSyntaxIsReduced(statement: String, expected: String) {
        #expect(PGQueryParser.normalize(statement) == nil)
        #expect(Self.normalized(statement) == QueryText.Result(text: expected, fingerprint: nil, reduced: true))
    }

    @Test(arguments: [
        ("SELECT 'abc", "SELECT"),
        ("SELECT E'it\\'s secr", "SELECT"),
        ("SELECT $q$ secret", "SELECT"),
        ("SELECT $q$ secret $q", "SELECT"),
        ("SELECT $$ secret", "SELECT"),
        ("SELECT $qu", "SELECT $qu"),
        ("SELECT a FROM t /* secret", "SELECT a FROM t"),
        ("SELECT a FROM \"secret", "SELECT a FROM"),
        ("SELECT B'1010', X'ff', N'nat', U&'d\\0061t', x'", "SELECT $1, $2, $3, $4,"),
        ("SELECT a$b$c, t1, $1 FROM t WHERE x = 'secret' AND", "SELECT a$b$c, t1, $1 FROM t WHERE x = $2 AND"),
        ("SELECT \"it's\" FROM t WHERE x = 'secret' AND", "SELECT \"it's\" FROM t WHERE x = $1 AND"),
        ("SELECT 1.5e-3, .5, 5e+2 FROM", "SELECT $1, $2, $3 FROM"),
    ])
    func cutStatementsAreReduced(statement: String, expected: String) {
        #expect(Self.normalized(statement) == QueryText.Result(text: expected, fingerprint: nil, reduced: true))
    }

    /// With `standard_conforming_strings = off` a backslash escapes a quote in `'…'`; read only
    /// as `on` (libpg_query's reading), `'it\'s secret'` would end after `it\` and show the rest.
    @Test func bothReadingsOfABackslashInAPlainStringAreRemoved() {
        let statement = #"SELECT 'it\'s secret' FROM t"#
        let conforming = SQLLiteralScanner.scan(Array(statement.utf8), backslashEscapesInPlainStrings: false)
        #expect(conforming.spans.map(\.range) == [7..<12, 20..<28])
        #expect(Self.normalized(statement) == QueryText.Result(text: "SELECT", fingerprint: nil, reduced: true))
        // Parseable as `on`; as `off`, `, b, ` is inside the first constant and ` FROM t` inside a cut one.
        let parseable = #"SELECT 'a\', b, '\' FROM t"#
        #expect(PGQueryParser.normalize(parseable) == "SELECT $1, b, $2 FROM t")
        #expect(Self.normalized(parseable) == QueryText.Result(text: "SELECT", fingerprint: nil, reduced: true))
        #expect(Self.normalized(#"SELECT * FROM t WHERE x ~ '\d+'"#)?.reduced == false)
    }

    /// The output holds no constant or comment: rendering it again gives it back. A `$n` written
    /// right after a name or `$` would join it: `$a` + `$1` reads as the tag of a dollar quote.
    @Test(arguments: [
        ("SELECT $a'x' FROM t", "SELECT $a $1 FROM t"),
        ("SELECT a'x', 5'y' FROM t", "SELECT a $1, $2 $3 FROM t"),
        ("SELECT x FROM t WHERE a = 'x' /* c */ AND b = E'y", "SELECT x FROM t WHERE a = $1 AND b ="),
        // Fuzz/corpus/query-text/regression-dollar-tag-at-end: a `$tag` left at the end was
        // dropped as a cut dollar quote the second time only.
        ("DO t bo0t$er $er $t$Sequence", "DO t bo0t$er $er"),
    ])
    func theOutputRendersToItself(statement: String, expected: String) throws {
        let once = try #require(Self.normalized(statement))
        #expect(once.text == expected)
        #expect(Self.normalized(once.text)?.text == once.text)
    }

    // MARK: - Policies and bounds

    @Test func policies() {
        let statement = "SELECT * FROM features WHERE email = 'a@b.c' /* c */"
        #expect(QueryText.render(statement, policy: .none) == nil)
        #expect(QueryText.render(statement, policy: .full) == QueryText.Result(text: statement, fingerprint: "697c806cdb287ec8", reduced: false))
        #expect(QueryText.render("SELECT 'cut", policy: .full) == QueryText.Result(text: "SELECT 'cut", fingerprint: nil, reduced: false))
        #expect(QueryText.Policy(rawValue: "normalized") == .normalized)
        #expect(QueryText.Policy.allCases.map(\.rawValue) == ["normalized", "full", "none"])
    }

    @Test func emptyAndBlank() {
        #expect(Self.normalized("") == QueryText.Result(text: "", fingerprint: "d8d13f8b2da6c9ad", reduced: false))
        #expect(Self.normalized(" \n\t")?.text == "")
        #expect(Self.normalized("-- only a comment")?.text == "")
    }

    @Test func textNoActivityCanHoldIsAPlaceholder() {
        #expect(Self.normalized("SELECT 'a\u{0}secret'") == QueryText.Result(text: QueryText.placeholder, fingerprint: nil, reduced: true))
        let tooLong = "SELECT '" + String(repeating: "x", count: QueryText.maximumStatementBytes) + "'"
        #expect(Self.normalized(tooLong) == QueryText.Result(text: QueryText.placeholder, fingerprint: nil, reduced: true))
    }

    /// The longest statement `pg_stat_activity` can show (1 MiB − 1 bytes) in bounded time, parsed
    /// or not.
    @Test func aStatementOfOneMebibyteIsBoundedInTime() throws {
        var parseable = "SELECT * FROM t WHERE a IN ("
        while parseable.utf8.count < QueryText.maximumStatementBytes - 20 { parseable += "'secret', " }
        parseable += "'secret')"
        let clock = ContinuousClock()
        var result: QueryText.Result?
        let elapsed = clock.measure { result = Self.normalized(parseable) }
        #expect(elapsed < .seconds(10), "\(elapsed)")
        #expect(result?.text.contains("secret") == false)
        #expect(result?.text.hasPrefix("SELECT * FROM t WHERE a IN ($1, $2, ") == true)

        let cut = String(parseable.dropLast(3))
        let elapsedCut = clock.measure { result = Self.normalized(cut) }
        #expect(elapsedCut < .seconds(10), "\(elapsedCut)")
        #expect(result?.reduced == true)
        #expect(result?.text.contains("secret") == false)
    }

    /// libpg_query recurses once per nesting level without checking its stack: on a 512 KiB
    /// thread stack (the exporter's own threads) `SELECT f(f(…(1)…))` 700 deep, about 2 KB,
    /// overflowed it. It runs on a thread of its own with a large stack, and only for statements
    /// up to `QueryText.parserInputLimit` bytes.
    @Test(arguments: [
        ("f(", ")", 2000), ("x[", "]", 3000), ("+", "", 9000), ("(SELECT ", ")", 3000), ("1+", "", 16000),
    ])
    func deeplyNestedStatementsDoNotOverflowASmallThreadStack(open: String, close: String, depth: Int) async throws {
        let statement = "SELECT " + String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        let result = try #require(await Self.renderOnSamplerSizedThread(statement))
        let expected = open == "1+"
            ? "SELECT " + (1...(depth + 1)).map { "$\($0)" }.joined(separator: "+")
            : "SELECT " + String(repeating: open, count: depth) + "$1" + String(repeating: close, count: depth)
        #expect(result.text == expected)
        #expect(result.reduced == false)
        #expect(result.fingerprint?.count == 16)
    }

    @Test func statementsAboveTheParserInputLimitAreReduced() throws {
        let statement = "SELECT 1" + String(repeating: "+1", count: QueryText.parserInputLimit / 2)
        let result = try #require(Self.normalized(statement))
        #expect(result.reduced == true)
        #expect(result.fingerprint == nil)
        #expect(result.text == "SELECT $1" + (2...(QueryText.parserInputLimit / 2 + 1)).map { "+$\($0)" }.joined())
    }

    /// Runs `render` on a thread with the 512 KiB stack `DetachedThread` gives the exporter's threads.
    static func renderOnSamplerSizedThread(_ statement: String) async -> QueryText.Result? {
        let outcome = Mutex<QueryText.Result??>(nil)
        #expect(DetachedThread.start { outcome.withLock { $0 = .some(QueryText.render(statement)) } })
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let done = outcome.withLock({ $0 }) { return done }
            try? await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("render did not finish within 30 s")
        return nil
    }

    // MARK: - Property: no constant leaks

    /// A constant holding `marker`, written in one of the forms PostgreSQL has.
    static func constant(form: Int, content: String, marker: String, tag: String) -> String {
        let body = content + marker + content
        switch form {
        case 0: return "'" + body.replacing("'", with: "''") + "'"
        case 1: return "E'" + body.replacing("\\", with: "\\\\").replacing("'", with: "\\'") + "'"
        case 2: return "U&'" + body.replacing("\\", with: "").replacing("'", with: "''") + "'"
        case 3: return "N'" + body.replacing("'", with: "''") + "'"
        case 4: return "B'" + body.replacing("'", with: "") + "'"
        case 5: return "X'" + body.replacing("'", with: "") + "'"
        case 6:
            let delimiter = "$" + tag + "$"
            return delimiter + body.replacing(delimiter, with: "") + delimiter
        case 7: return "/*" + body.replacing("*/", with: "").replacing("/*", with: "") + "*/"
        case 8: return "--" + body.replacing("\n", with: " ").replacing("\r", with: " ") + "\n"
        default: return "(E'\\'' || '" + body.replacing("'", with: "''") + "')"
        }
    }

    static let marker = "QTMARK"
    static let numericMarker = "7294016385"
    static let contentCharacters: [String] = [
        "a", "Z", " ", "'", "''", "\\", "\\'", "$", "$$", "$t$", "\"", "*/", "/*", "--", "\n", "é", "€", ";", "0", "e", "x",
    ]
    static let fillers: [String] = [
        "SELECT", "*", "FROM", "features", "WHERE", "email", "=", ",", "(", ")", "AND", "IN", "::text", "\"quoted \"\"id\"",
        "$1", "a$b", "t1", "LIMIT", "-", "\n", "f(", "JSON_TABLE(", "RETURNING",
    ]

    /// The oracle: every constant and comment holds a marker; whatever the forms, the order, the
    /// parse outcome and the byte at which the statement is cut, the marker never reaches the output.
    @Test func noMarkerInAnyConstantFormEverReachesTheOutput() async {
        let piece = zip(
            Gen.int(in: 0...12), Gen.element(of: Self.contentCharacters).compactMap { $0 }.array(of: 0...4),
            Gen.element(of: ["", "t", "tag", "a_1"]).compactMap { $0 }, Gen.element(of: Self.fillers).compactMap { $0 }
        ).map { form, content, tag, filler -> String in
            switch form {
            case 10: return filler
            case 11: return [Self.numericMarker, "0x" + Self.numericMarker, "1_" + Self.numericMarker, "." + Self.numericMarker, Self.numericMarker + "e-5"][content.count % 5]
            case 12: return "SELECT * FROM features WHERE email ="
            default: return Self.constant(form: form, content: content.joined(), marker: Self.marker, tag: tag)
            }
        }
        // Pieces are separated by white space: written side by side, PostgreSQL itself reads some
        // of them as one identifier (`email$tag$…$tag$`, `t17294016385`), not as a constant.
        let statement = zip(piece.array(of: 1...8), Gen.element(of: [" ", "\n", " \t"]).compactMap { $0 }, Gen.int(in: 0...400), Gen.bool)
        await propertyCheck(count: 4000, input: statement) { pieces, separator, cutAt, cut in
            let text = pieces.joined(separator: separator)
            let bytes = cut ? Array(text.utf8.prefix(cutAt)) : Array(text.utf8)
            guard let result = QueryText.render(bytes: bytes) else {
                Issue.record("no result for \(text)")
                return
            }
            #expect(!result.text.contains(Self.marker), "\(String(decoding: bytes, as: UTF8.self)) -> \(result.text)")
            #expect(!result.text.contains(Self.numericMarker), "\(String(decoding: bytes, as: UTF8.self)) -> \(result.text)")
        }
    }

    /// The same oracle on statements libpg_query parses: the normalized path itself (not only the
    /// fallback) is checked.
    @Test func noMarkerReachesTheOutputOfParseableStatements() async {
        let constant = zip(Gen.int(in: 0...6), Gen.element(of: Self.contentCharacters).compactMap { $0 }.array(of: 0...4))
            .map { form, content in
                form == 6 ? Self.numericMarker : Self.constant(form: [0, 1, 3, 6, 7, 9][form], content: content.joined(), marker: Self.marker, tag: "q")
            }
        let statement = zip(constant, constant, constant)
        await propertyCheck(count: 2000, input: statement) { a, b, c in
            let text = "SELECT \(a) AS c0, f(\(b)) FROM features WHERE x = \(c) OR y IN (\(b), \(a))"
            let result = Self.normalized(text)
            #expect(result?.text.contains(Self.marker) == false, "\(text) -> \(result?.text ?? "nil")")
            #expect(result?.text.contains(Self.numericMarker) == false, "\(text) -> \(result?.text ?? "nil")")
        }
    }
}
