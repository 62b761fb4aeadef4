import Testing

/// Duration flags longer than `TimeSpan.maximum`, through the real binary: each is refused with
/// one line naming the flag, exit status 2. Before `TimeSpan`, the last three trapped at start
/// (SIGILL: "Double value cannot be converted to UInt32/Int").
@Suite struct DurationFlagsTests {
    @Test(arguments: [
        ["serve", "--web.scrape-timeout"], ["serve", "--web.connection-timeout"], ["serve", "--pg.statement-timeout"],
        ["serve", "--pg.lock-timeout"], ["serve", "--sample.interval"], ["serve", "--pg.connect-timeout"],
    ])
    func aFlagOverTheMaximumIsRefusedInOneLine(command: [String]) throws {
        let exporter = try ExporterProcess(
            command + ["99999999999999999999h", "--dsn", "host=/nonexistent"], waitForListening: false)
        #expect(try exporter.waitForExit() == 2)
        let message = "Error: \(command[1]): invalid duration \"99999999999999999999h\": longer than the maximum, 365d"
        #expect(exporter.log.split(separator: "\n").first.map(String.init) == message, "\(exporter.log)")
    }

    @Test(arguments: ["--pg.statement-timeout", "--pg.lock-timeout"])
    func aServerTimeoutOverPostgresLimitIsRefused(flag: String) throws {
        let exporter = try ExporterProcess(["serve", flag, "25d", "--dsn", "host=/nonexistent"], waitForListening: false)
        #expect(try exporter.waitForExit() == 2)
        let message = "Error: \(flag): at most 2147483647ms (24d20h31m23s), PostgreSQL's limit"
        #expect(exporter.log.split(separator: "\n").first.map(String.init) == message, "\(exporter.log)")
    }
}
