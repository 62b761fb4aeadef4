import Testing

@testable import PGLockExporter

@Suite struct StructuredLogHandlerTests {
    /// Found by the log-fields fuzz target (Fuzz/corpus/log-fields/regression-bare-control-bytes):
    /// a value with control characters but no space was written bare, so a NUL or an escape
    /// sequence from an application name reached the log and the terminal reading it.
    @Test func controlCharactersAreQuotedAndEscaped() {
        #expect(StructuredLogHandler.logfmt([("value", "pla\0\u{05}")]) == #"value="pla\u0000\u0005""#)
        #expect(StructuredLogHandler.logfmt([("app", "\u{1B}]0;pwned\u{07}")]) == #"app="\u001b]0;pwned\u0007""#)
        #expect(StructuredLogHandler.logfmt([("app", "x\u{9B}2J\u{7F}")]) == #"app="x\u009b2J\u007f""#)
        #expect(StructuredLogHandler.logfmt([("app", "a\u{2028}b")]) == "app=\"a\u{2028}b\"")
        #expect(StructuredLogHandler.logfmt([("app", "psql"), ("q", "a b")]) == #"app=psql q="a b""#)
        #expect(StructuredLogHandler.json([("app", "\u{1B}[2J\u{85}")]) == #"{"app":"\u001b[2J\u0085"}"#)
    }
}
