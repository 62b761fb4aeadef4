import Testing

@testable import PGLockExporter

@Suite struct DurationTextTests {
    @Test(arguments: [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5s", 1.5)])
    func parses(text: String, seconds: Double) throws {
        #expect(try DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "5", "m", "5x", "-1s", "5 m"])
    func rejects(text: String) {
        #expect(throws: DurationText.ParseError.self) { try DurationText.seconds(text) }
    }

    @Test func formats() {
        #expect(DurationText.format(0.25) == "250ms")
        #expect(DurationText.format(90) == "1m30s")
        #expect(DurationText.format(3600) == "1h")
    }

    /// Found by the `duration` fuzz target (Fuzz/corpus/duration/regression-control-bytes-in-error):
    /// the error quoted the flag's bytes as they were, so a CR or an escape sequence in a flag
    /// broke the one-line error or reached the terminal.
    @Test func errorIsOneTerminalSafeLine() {
        func message(_ text: String) -> String {
            do { _ = try DurationText.seconds(text) } catch { return error.description }
            return "accepted"
        }
        let text = message("Q\r\u{FFFC}\0\u{1B}[2J")
        #expect(text == "invalid duration \"Q\\x0d\u{FFFC}\\x00\\x1b[2J\": use a number with a unit, e.g. 500ms, 30s, 5m, 1h")
        #expect(!text.contains { $0.isNewline })
        #expect(message(String(repeating: "x", count: 10_000)).count < 200)
    }
}
