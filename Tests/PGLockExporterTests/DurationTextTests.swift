import PropertyBased
import Testing

@testable import PGLockExporter

@Suite struct DurationTextTests {
    @Test(arguments: [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5s", 1.5)])
    func parses(text: String, seconds: Double) throws {
        #expect(try DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "5", "m", "5x", "-1s", "5 m", ".s", "1.2.3s", "½s", "٣s", "1e3s", "nans", "infs", "0x10s", "5s ", "  5s"])
    func rejects(text: String) {
        let error = #expect(throws: DurationText.ParseError.self) { try DurationText.seconds(text) }
        #expect(error?.reason == .syntax)
        #expect(throws: DurationText.ParseError.self) { try DurationText.timeSpan(text) }
    }

    /// Longer than 365 days, however written: refused in one line, never a number that traps later.
    @Test(arguments: [
        "99999999999999999999h", "366d", "8761h", "31536001s", "1" + String(repeating: "0", count: 400) + "s",
        "365d1ms", "200d200d",
    ])
    func refusesMoreThanAYear(text: String) {
        let error = #expect(throws: DurationText.ParseError.self) { try DurationText.seconds(text) }
        #expect(error?.reason == .tooLong)
        #expect(error.map { "\($0)" }?.hasSuffix("longer than the maximum, 365d") == true)
        #expect(error.map { "\($0)" }?.contains("\n") == false)
        #expect(throws: DurationText.ParseError.self) { try DurationText.timeSpan(text) }
    }

    @Test func theMaximumItselfIsAccepted() throws {
        #expect(try DurationText.timeSpan("365d") == .maximum)
        #expect(try DurationText.timeSpan("8760h") == .maximum)
        #expect(try DurationText.seconds("365d") == 31_536_000)
        #expect(try DurationText.timeSpan("1h30m") == .seconds(5400))
        #expect(try DurationText.timeSpan("0s") == .zero)
    }

    @Test func aLongFlagValueIsCutInTheMessage() {
        let text = String(repeating: "9", count: 300) + "h"
        let error = #expect(throws: DurationText.ParseError.self) { try DurationText.seconds(text) }
        #expect(error.map { "\($0)" } == "invalid duration \"\(String(repeating: "9", count: 64))…\": longer than the maximum, 365d")
    }

    /// Garbage of every kind: parsing either refuses or gives a span within the maximum.
    @Test func anyTextParsesWithinTheMaximumOrIsRefused() async {
        let text = Gen.element(of: Array("0123456789.smhd 9")).compactMap { $0 }.string(of: 0...24)
        await propertyCheck(count: 2000, input: text) { text in
            if let seconds = try? DurationText.seconds(text) {
                #expect(seconds >= 0 && seconds <= 31_536_000, "\(text)")
            }
        }
    }

    @Test func formats() {
        #expect(DurationText.format(0.25) == "250ms")
        #expect(DurationText.format(90) == "1m30s")
        #expect(DurationText.format(3600) == "1h")
        #expect(DurationText.format(0.9996) == "1000ms")
        #expect(DurationText.format(1.5) == "2s")
    }

    /// Messages format durations that came from outside (a DSN's connect_timeout, a clock that
    /// went back): every Double formats, clamped, without trapping.
    @Test func formatsHostileNumbersWithoutTrapping() {
        #expect(DurationText.format(.nan) == "0ms")
        #expect(DurationText.format(-5) == "0ms")
        #expect(DurationText.format(-.infinity) == "0ms")
        #expect(DurationText.format(.infinity) == "8760h")
        #expect(DurationText.format(1e300) == "8760h")
        #expect(DurationText.format(TimeSpan.maximum) == "8760h")
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
