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
}
