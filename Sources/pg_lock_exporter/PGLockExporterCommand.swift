import ArgumentParser
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter`: `serve` (the default), `check`, `remediate` and `migrate`.
@main
struct PGLockExporterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pg_lock_exporter",
        abstract: "Prometheus exporter that names the session blocking your PostgreSQL database.",
        version: BuildInfo.version,
        subcommands: [Serve.self, Check.self, Remediate.self, Migrate.self, Episodes.self],
        defaultSubcommand: Serve.self
    )

    /// Like ArgumentParser's `main()`, but a wrong command line exits 2 (as `check` and
    /// `remediate` document) instead of EX_USAGE.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ConfigFileError {
            // The command line was right; the file it names is not: say what is wrong in the
            // file, without the usage text that would suggest the flags were the mistake.
            printError("Error: \(error.description)")
            Glibc.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// A configuration file (`--web.config.file`, `--config.file`) that cannot be used. Exits 2 like
/// a usage error, but prints only the file, the field and the problem.
struct ConfigFileError: Error, CustomStringConvertible {
    let description: String
}

/// Exit codes of `check` and `remediate`.
enum ExitStatus {
    /// A condition the user asked to fail on (`--fail-on-blocking`), a failed termination, or
    /// a refused `--pid`.
    static let finding = ExitCode(1)
    /// The database could not be reached, or the command line is wrong.
    static let connectionOrUsage = ExitCode(2)
}

/// Writes one line to standard error (unbuffered, so it is never lost at exit).
func printError(_ message: String) {
    var line = Array((message + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
