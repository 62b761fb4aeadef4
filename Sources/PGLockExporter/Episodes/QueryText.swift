/// A statement as `pg_stat_activity.query` shows it, turned into what an episode may store and
/// serve (`--episodes.query-text`).
///
/// **The guarantee under `.normalized` (the default):** the text holds none of the statement's
/// constants and none of its comments. Every string constant (`'…'`, `E'…'`, `U&'…'`, `N'…'`,
/// `B'…'`, `X'…'`, `$$…$$`, `$tag$…$tag$`) and numeric constant is replaced by a parameter `$n`,
/// every comment is removed, and a constant, comment or quoted identifier the text ends inside
/// (`pg_stat_activity` cuts statements at `track_activity_query_size` bytes) is dropped from its
/// opening quote on. This holds for every input, parseable or not:
/// - a statement PostgreSQL's parser (libpg_query, PostgreSQL 15's grammar) accepts is normalized
///   by it (`pg_query_normalize`) and fingerprinted (`pg_query_fingerprint`); then the scanner
///   below removes what libpg_query keeps: comments, and the constants it leaves as written in
///   utility statements (`COPY t FROM '/path'`, `CREATE VIEW v AS SELECT 'x'`, `CALL p('x')`);
/// - a statement it rejects (cut off, syntax newer than 15, not SQL), or one longer than
///   `parserInputLimit` (libpg_query's recursion needs stack in proportion, see `ParserThread`),
///   is *reduced*: the scanner (`SQLLiteralScanner`) removes the constants and comments itself;
///   `reduced` says so and there is no fingerprint;
/// - the session's `standard_conforming_strings` is unknown, so the text is scanned both ways
///   (a backslash in `'…'` escaping or not) and whatever either reading calls a constant or
///   comment is removed; when the two readings differ, libpg_query (which assumes `on`) is not
///   trusted and the statement is reduced;
/// - text no `pg_stat_activity` can hold (a NUL byte, more than `maximumStatementBytes`) is
///   replaced whole by `placeholder`.
/// Identifiers, keywords, operators and whitespace are kept as written (a table or column name
/// is not a constant; a name that is itself a secret is outside this guarantee).
///
/// `.full` keeps the text as written (with a fingerprint when it parses); `.none` keeps nothing.
public enum QueryText {
    /// `--episodes.query-text`.
    public enum Policy: String, CaseIterable, Sendable {
        case normalized, full, none
    }

    /// What may be stored and served for one statement.
    public struct Result: Equatable, Sendable {
        /// The statement as the policy allows it to be shown.
        public let text: String
        /// libpg_query's fingerprint (16 hex digits): equal for statements that differ only in
        /// constants, comments and whitespace; nil when the statement does not parse (or is not
        /// given to the parser: longer than `parserInputLimit`, or reduced).
        public let fingerprint: String?
        /// True when libpg_query could not parse the statement and the scanner alone removed its
        /// constants and comments (or the whole text became `placeholder`).
        public let reduced: Bool

        public init(text: String, fingerprint: String?, reduced: Bool) {
            self.text = text
            self.fingerprint = fingerprint
            self.reduced = reduced
        }
    }

    /// Shown instead of text that cannot have come from `pg_stat_activity.query`.
    public static let placeholder = "<statement not shown>"

    /// The longest statement `pg_stat_activity.query` can hold: `track_activity_query_size` is at
    /// most 1 MiB, including the terminating NUL.
    public static let maximumStatementBytes = 1 << 20

    /// The longest statement handed to libpg_query (on a `ParserThread`, whose stack this bounds);
    /// longer ones are reduced by the scanner, without a fingerprint.
    public static let parserInputLimit = 32 * 1024

    /// The statement as `policy` allows it to be stored and served; nil under `.none`.
    public static func render(_ statement: String, policy: Policy = .normalized) -> Result? {
        switch policy {
        case .none:
            return nil
        case .full:
            let fingerprint = withinLimits(statement) ? ParserThread.run({ PGQueryParser.fingerprint(statement) }) ?? nil : nil
            return Result(text: statement, fingerprint: fingerprint, reduced: false)
        case .normalized:
            return normalized(statement)
        }
    }

    /// `render` for bytes as they came off the wire: invalid UTF-8 becomes U+FFFD first (which
    /// never swallows a quote or any other ASCII byte, so the scan sees every delimiter).
    public static func render(bytes: some Collection<UInt8>, policy: Policy = .normalized) -> Result? {
        render(String(decoding: Array(bytes), as: UTF8.self), policy: policy)
    }

    /// Many statements at once, each as `render` would give it: under `normalized` every parse
    /// runs in one `ParserThread` (a thread is created per call: one per statement made a page of
    /// 500 statements spend most of its time creating threads).
    public static func render(all statements: [String], policy: Policy = .normalized) -> [Result?] {
        guard policy == .normalized else { return statements.map { render($0, policy: policy) } }
        let prepared = statements.map(prepare)
        let parseable = prepared.indices.filter { if case .parse = prepared[$0] { true } else { false } }
        let parsed: [(String, String?)?] = parseable.isEmpty ? [] : ParserThread.run({
            parseable.map { index in PGQueryParser.normalize(statements[index]).map { ($0, PGQueryParser.fingerprint(statements[index])) } }
        }) ?? Array(repeating: nil, count: parseable.count)
        var results = prepared.map { finish($0, parsed: nil) }
        for (position, index) in parseable.enumerated() { results[index] = finish(prepared[index], parsed: parsed[position]) }
        return results
    }

    /// What `normalized` needs before the parser: nothing more (a placeholder), or the scans.
    private enum Prepared {
        case placeholder
        case parse(bytes: [UInt8], scans: (SQLLiteralScanner.Scan, SQLLiteralScanner.Scan))
        case scanned(bytes: [UInt8], scans: (SQLLiteralScanner.Scan, SQLLiteralScanner.Scan))
    }

    private static func prepare(_ statement: String) -> Prepared {
        let bytes = Array(statement.utf8)
        guard bytes.count <= maximumStatementBytes, !bytes.contains(0) else { return .placeholder }
        let conforming = SQLLiteralScanner.scan(bytes, backslashEscapesInPlainStrings: false)
        let escaping = SQLLiteralScanner.scan(bytes, backslashEscapesInPlainStrings: true)
        // The parser only where both readings of the backslash agree and the stack bound holds.
        return conforming.spans == escaping.spans && bytes.count <= parserInputLimit
            ? .parse(bytes: bytes, scans: (conforming, escaping)) : .scanned(bytes: bytes, scans: (conforming, escaping))
    }

    private static func finish(_ prepared: Prepared, parsed: (String, String?)?) -> Result {
        switch prepared {
        case .placeholder:
            return Result(text: placeholder, fingerprint: nil, reduced: true)
        case .parse(let bytes, let scans), .scanned(let bytes, let scans):
            if let (normalized, fingerprint) = parsed {
                return Result(text: removingConstantsAndComments(Array(normalized.utf8)), fingerprint: fingerprint, reduced: false)
            }
            return Result(text: removingConstantsAndComments(bytes, scans: scans), fingerprint: nil, reduced: true)
        }
    }

    private static func normalized(_ statement: String) -> Result {
        let prepared = prepare(statement)
        guard case .parse = prepared else { return finish(prepared, parsed: nil) }
        let parsed = ParserThread.run({ PGQueryParser.normalize(statement).map { ($0, PGQueryParser.fingerprint(statement)) } }) ?? nil
        return finish(prepared, parsed: parsed)
    }

    /// Whether libpg_query may be given the statement: no NUL, at most `parserInputLimit` bytes.
    private static func withinLimits(_ statement: String) -> Bool {
        !statement.utf8.contains(0) && statement.utf8.count <= parserInputLimit
    }

    private static func removingConstantsAndComments(_ text: [UInt8]) -> String {
        removingConstantsAndComments(text, scans: (SQLLiteralScanner.scan(text, backslashEscapesInPlainStrings: false),
                                                   SQLLiteralScanner.scan(text, backslashEscapesInPlainStrings: true)))
    }

    /// The text with each constant replaced by the next free `$n`, each comment by at most one
    /// space, and an unterminated constant, comment or quoted identifier cut off with all after it;
    /// without blanks around it, nor a terminating semicolon.
    private static func removingConstantsAndComments(
        _ text: [UInt8], scans: (SQLLiteralScanner.Scan, SQLLiteralScanner.Scan)
    ) -> String {
        var parameter = max(scans.0.highestParameter, scans.1.highestParameter)
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var position = 0
        for span in SQLLiteralScanner.union(scans.0.spans, scans.1.spans) {
            out.append(contentsOf: text[position..<span.range.lowerBound])
            position = span.range.upperBound
            switch span.kind {
            case .literal:
                // After a name or `$`, `$n` would join it (`$a` + `$1` reads as a dollar quote's tag).
                if let last = out.last, SQLLiteralScanner.isIdentifierStart(last) || SQLLiteralScanner.isDigit(last) || last == UInt8(ascii: "$") {
                    out.append(UInt8(ascii: " "))
                }
                parameter += 1
                out.append(contentsOf: "$\(parameter)".utf8)
            case .comment:
                // The blanks on both sides go with it; one space stays where it separated two words.
                while let last = out.last, isBlank(last) { out.removeLast() }
                while position < text.count, isBlank(text[position]) { position += 1 }
                if let last = out.last, !isSpace(last), position < text.count, !isSpace(text[position]) {
                    out.append(UInt8(ascii: " "))
                }
            case .unterminated:
                position = text.count
            }
        }
        out.append(contentsOf: text[position...])
        let start = out.firstIndex { !isSpace($0) } ?? out.endIndex
        var end = max(start, out.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start)
        // The terminating semicolon (psql sends it, drivers do not) and the blanks before it:
        // one code path reads the same whichever client sent it. Never part of a constant,
        // comment or quoted name here: those were replaced, removed or cut off above.
        while end > start, out[end - 1] == UInt8(ascii: ";") {
            end -= 1
            while end > start, isSpace(out[end - 1]) { end -= 1 }
        }
        return String(decoding: out[start..<end], as: UTF8.self)
    }

    private static func isBlank(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }

    private static func isSpace(_ c: UInt8) -> Bool {
        c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") || c == 0x0C
    }
}
