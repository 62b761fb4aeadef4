/// Where a statement's constants and comments are, found the way PostgreSQL's lexer
/// (`src/backend/parser/scan.l`) finds them, for text that need not be a whole or valid statement.
///
/// Why a scanner of its own and not libpg_query's `pg_query_scan`: that scanner fails on exactly
/// the text this one exists for. `pg_stat_activity` cuts statements at `track_activity_query_size`
/// bytes, often inside a string constant, and `pg_query_scan` then returns only the error
/// "unterminated quoted string"; it also rejects PostgreSQL 16's numeric constants (`0x1F`,
/// `1_000`). This scanner never fails: a constant, quoted identifier or comment that the text ends
/// inside is `.unterminated` and runs to the end of the text.
///
/// What it recognises, as scan.l does:
/// - string constants `'…'` (with `''`), `E'…'` (backslash escapes), `U&'…'`, `N'…'`, `B'…'`,
///   `X'…'`, dollar-quoted `$$…$$` and `$tag$…$tag$`;
/// - numeric constants: decimal, `.5`, exponents, and 16's `0x`/`0o`/`0b` forms and `_`
///   separators (a constant runs over every letter, digit, `_` and `.` that follows it, so trailing
///   junk is part of it);
/// - comments `-- …` to the end of the line and `/* … */`, nested;
/// - quoted identifiers `"…"` and `U&"…"` (kept, but scanned so a `'` inside one starts nothing);
/// - identifiers, which may contain `$` and digits (so `a$b$` and `t1` start nothing), and
///   parameters `$1`.
///
/// `standard_conforming_strings`: the session's setting decides whether a backslash in `'…'`
/// escapes the next character, and the text does not say which was in force. Callers scan both
/// ways and treat as a constant whatever either reading takes for one (see `QueryText`).
struct SQLLiteralScanner {
    enum Kind: Int, Comparable, Sendable {
        case comment, literal, unterminated
        static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    /// A constant or comment: byte offsets into the scanned UTF-8.
    struct Span: Equatable, Sendable {
        var range: Range<Int>
        var kind: Kind
    }

    /// The spans in order, not overlapping, and the highest `$n` parameter the text uses (0 for none).
    struct Scan: Equatable, Sendable {
        var spans: [Span]
        var highestParameter: Int
    }

    static func scan(_ text: [UInt8], backslashEscapesInPlainStrings: Bool) -> Scan {
        var scanner = SQLLiteralScanner(text: text, backslashEscapesInPlainStrings: backslashEscapesInPlainStrings)
        scanner.run()
        return Scan(spans: scanner.spans, highestParameter: scanner.highestParameter)
    }

    /// The spans of both readings merged: every byte either reading puts in a constant or comment
    /// is in one. Where spans overlap, the merged span is the stronger kind.
    static func union(_ a: [Span], _ b: [Span]) -> [Span] {
        var merged: [Span] = []
        for span in (a + b).sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            if let last = merged.last, span.range.lowerBound < last.range.upperBound {
                merged[merged.count - 1] = Span(
                    range: last.range.lowerBound..<max(last.range.upperBound, span.range.upperBound),
                    kind: max(last.kind, span.kind))
            } else {
                merged.append(span)
            }
        }
        return merged
    }

    // MARK: - The scan

    private let text: [UInt8]
    private let backslashEscapesInPlainStrings: Bool
    private var spans: [Span] = []
    private var highestParameter = 0

    private init(text: [UInt8], backslashEscapesInPlainStrings: Bool) {
        self.text = text
        self.backslashEscapesInPlainStrings = backslashEscapesInPlainStrings
    }

    private mutating func run() {
        var i = 0
        let n = text.count
        while i < n {
            let c = text[i]
            let next: UInt8? = i + 1 < n ? text[i + 1] : nil
            switch c {
            case ASCII.minus where next == ASCII.minus:
                var end = i + 2
                while end < n, text[end] != ASCII.newline, text[end] != ASCII.carriageReturn { end += 1 }
                i = record(i, end, .comment)
            case ASCII.slash where next == ASCII.star:
                i = blockComment(from: i)
            case ASCII.quote:
                i = quoted(from: i, contentStart: i + 1, backslashEscapes: backslashEscapesInPlainStrings)
            case ASCII.doubleQuote:
                i = quotedIdentifier(from: i, contentStart: i + 1)
            case ASCII.dollar:
                i = dollar(from: i)
            case _ where Self.isDigit(c) || (c == ASCII.dot && next.map(Self.isDigit) == true):
                i = number(from: i)
            case _ where Self.isIdentifierStart(c):
                i = identifier(from: i)
            default:
                i += 1
            }
        }
    }

    /// Records `start..<end` and returns where scanning goes on.
    private mutating func record(_ start: Int, _ end: Int, _ kind: Kind) -> Int {
        spans.append(Span(range: start..<end, kind: kind))
        return end
    }

    /// `/* … */`, nested as PostgreSQL nests them.
    private mutating func blockComment(from start: Int) -> Int {
        var depth = 1
        var j = start + 2
        let n = text.count
        while j < n {
            if text[j] == ASCII.slash, j + 1 < n, text[j + 1] == ASCII.star {
                depth += 1
                j += 2
            } else if text[j] == ASCII.star, j + 1 < n, text[j + 1] == ASCII.slash {
                depth -= 1
                j += 2
                if depth == 0 { return record(start, j, .comment) }
            } else {
                j += 1
            }
        }
        return record(start, n, .unterminated)
    }

    /// A single-quoted constant whose opening quote is at `contentStart - 1`; the span starts at
    /// `start` (its prefix: `E`, `U&`, `B`…). `''` is a quote inside it; with `backslashEscapes`, so
    /// is `\'`.
    private mutating func quoted(from start: Int, contentStart: Int, backslashEscapes: Bool) -> Int {
        var j = contentStart
        let n = text.count
        while j < n {
            let c = text[j]
            if backslashEscapes, c == ASCII.backslash {
                j += 2
            } else if c == ASCII.quote {
                if j + 1 < n, text[j + 1] == ASCII.quote {
                    j += 2
                } else {
                    return record(start, j + 1, .literal)
                }
            } else {
                j += 1
            }
        }
        return record(start, n, .unterminated)
    }

    /// `"…"` (`""` inside): an identifier, kept; one the text ends inside is dropped like a cut constant.
    private mutating func quotedIdentifier(from start: Int, contentStart: Int) -> Int {
        var j = contentStart
        let n = text.count
        while j < n {
            if text[j] == ASCII.doubleQuote {
                if j + 1 < n, text[j + 1] == ASCII.doubleQuote { j += 2; continue }
                return j + 1
            }
            j += 1
        }
        return record(start, n, .unterminated)
    }

    /// `$1` (a parameter), `$$…$$` or `$tag$…$tag$` (a constant), or a lone `$`.
    private mutating func dollar(from start: Int) -> Int {
        let n = text.count
        var j = start + 1
        if j < n, Self.isDigit(text[j]) {
            var number = 0
            while j < n, Self.isDigit(text[j]) {
                number = min(number * 10 + Int(text[j] - ASCII.zero), 1_000_000)
                j += 1
            }
            highestParameter = max(highestParameter, number)
            return j
        }
        if j < n, Self.isIdentifierStart(text[j]) {
            while j < n, Self.isIdentifierStart(text[j]) || Self.isDigit(text[j]) { j += 1 }
        }
        guard j < n, text[j] == ASCII.dollar else { return start + 1 }
        let delimiter = text[start...j]
        let bodyStart = j + 1
        guard let close = Self.firstIndex(of: delimiter, in: text, from: bodyStart) else {
            return record(start, n, .unterminated)
        }
        return record(start, close + delimiter.count, .literal)
    }

    /// A numeric constant with everything that clings to it (`1.5e-3`, `0x1F`, `1_000`, `5abc`).
    private mutating func number(from start: Int) -> Int {
        let n = text.count
        let hexadecimal = text[start] == ASCII.zero && start + 1 < n && (text[start + 1] | 0x20) == UInt8(ascii: "x")
        var j = start
        while j < n {
            let c = text[j]
            if Self.isDigit(c) || Self.isLetter(c) || c == ASCII.underscore || c == ASCII.dot {
                j += 1
            } else if !hexadecimal, c == ASCII.plus || c == ASCII.minus, (text[j - 1] | 0x20) == UInt8(ascii: "e"),
                      j + 1 < n, Self.isDigit(text[j + 1]) {
                j += 1
            } else {
                break
            }
        }
        return record(start, j, .literal)
    }

    /// An identifier or keyword, or the prefix of a constant (`E'`, `B'`, `X'`, `N'`, `U&'`) or of a
    /// quoted identifier (`U&"`).
    private mutating func identifier(from start: Int) -> Int {
        let n = text.count
        var j = start + 1
        while j < n, Self.isIdentifierStart(text[j]) || Self.isDigit(text[j]) || text[j] == ASCII.dollar { j += 1 }
        guard j == start + 1, j < n else { return j }
        let letter = text[start] | 0x20
        let following = text[j]
        if following == ASCII.quote {
            switch letter {
            case UInt8(ascii: "e"): return quoted(from: start, contentStart: j + 1, backslashEscapes: true)
            case UInt8(ascii: "b"), UInt8(ascii: "x"): return quoted(from: start, contentStart: j + 1, backslashEscapes: false)
            case UInt8(ascii: "n"):
                return quoted(from: start, contentStart: j + 1, backslashEscapes: backslashEscapesInPlainStrings)
            default: return j
            }
        }
        if letter == UInt8(ascii: "u"), following == ASCII.ampersand, j + 1 < n {
            if text[j + 1] == ASCII.quote { return quoted(from: start, contentStart: j + 2, backslashEscapes: false) }
            if text[j + 1] == ASCII.doubleQuote { return quotedIdentifier(from: start, contentStart: j + 2) }
        }
        return j
    }

    // MARK: - Bytes

    private static func firstIndex(of needle: ArraySlice<UInt8>, in haystack: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, needle.count <= haystack.count else { return nil }
        var i = from
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= ASCII.zero && c <= ASCII.zero + 9 }
    static func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") }
    /// scan.l's `ident_start`: a letter, `_`, or any byte of a multibyte character.
    static func isIdentifierStart(_ c: UInt8) -> Bool { isLetter(c) || c == ASCII.underscore || c >= 0x80 }

    enum ASCII {
        static let minus = UInt8(ascii: "-"), plus = UInt8(ascii: "+"), slash = UInt8(ascii: "/"), star = UInt8(ascii: "*")
        static let quote = UInt8(ascii: "'"), doubleQuote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        static let dollar = UInt8(ascii: "$"), dot = UInt8(ascii: "."), underscore = UInt8(ascii: "_")
        static let ampersand = UInt8(ascii: "&"), zero = UInt8(ascii: "0")
        static let newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")
    }
}
