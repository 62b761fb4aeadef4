import ArgumentParser
import Logging
import PGLockExporter

/// `--log.level` and `--log.format`, as in the Prometheus exporters.
struct LoggingOptions: ParsableArguments {
    @Option(name: .customLong("log.level"), help: "Only log messages with the given severity or above: debug, info, warn, error.")
    var level: String = "info"

    @Option(name: .customLong("log.format"), help: "Output format of log messages: logfmt or json.")
    var format: String = "logfmt"

    func validate() throws {
        guard Self.levels[level] != nil else { throw ValidationError("--log.level: \"\(level)\" is not one of debug, info, warn, error") }
        guard StructuredLogHandler.Format(rawValue: format) != nil else {
            throw ValidationError("--log.format: \"\(format)\" is not one of logfmt, json")
        }
    }

    static let levels: [String: Logger.Level] = ["debug": .debug, "info": .info, "warn": .warning, "error": .error]

    func makeLogger(_ label: String) -> Logger {
        let level = Self.levels[level] ?? .info
        let format = StructuredLogHandler.Format(rawValue: format) ?? .logfmt
        return Logger(label: label) { label in StructuredLogHandler(label: label, format: format, level: level) }
    }
}
