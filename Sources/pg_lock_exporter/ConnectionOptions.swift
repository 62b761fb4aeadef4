import ArgumentParser
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to reach PostgreSQL; shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("dsn"),
        help: ArgumentHelp(
            "libpq connection string or URI. Default: $DATA_SOURCE_NAME, else libpq's environment (PGHOST, PGUSER, PGPASSFILE, ...).",
            valueName: "conninfo"))
    var dsn: String?

    @Option(
        name: .customLong("pg.password-file"),
        help: ArgumentHelp("File holding the password. Default: $DATA_SOURCE_PASS_FILE, else libpq's own (PGPASSWORD, PGPASSFILE).", valueName: "file"))
    var passwordFile: String?

    @Option(name: .customLong("pg.connect-timeout"), help: "Give up connecting after this long, every address of the DSN together.")
    var connectTimeout: String = "5s"

    @Option(name: .customLong("pg.statement-timeout"), help: "Server-side statement_timeout of the exporter's own session.")
    var statementTimeout: String = "5s"

    @Option(name: .customLong("pg.lock-timeout"), help: "Server-side lock_timeout of the exporter's own session.")
    var lockTimeout: String = "1s"

    /// Resolves the DSN (flag, then `DATA_SOURCE_NAME`, then libpq defaults) and validates it,
    /// without ever printing it.
    func settings(applicationName: String = "pg_lock_exporter") throws -> ConnectionSettings {
        let resolved = dsn ?? getenv("DATA_SOURCE_NAME").map { String(cString: $0) } ?? ""
        do {
            try ConnectionString.validate(resolved)
        } catch {
            throw ValidationError("\(dsn != nil ? "--dsn" : "DATA_SOURCE_NAME"): \(error.message)")
        }
        var password: String?
        if let file = passwordFile ?? getenv("DATA_SOURCE_PASS_FILE").map({ String(cString: $0) }) {
            let flag = passwordFile != nil ? "--pg.password-file" : "DATA_SOURCE_PASS_FILE"
            do { password = try TextFile.secret(file) } catch { throw ValidationError("\(flag) \(error)") }
        }
        let statement = try parseTimeSpan(statementTimeout, "--pg.statement-timeout")
        guard statement >= .milliseconds(100) else { throw ValidationError("--pg.statement-timeout: at least 100ms (the exporter never runs unbounded)") }
        let lock = try parseTimeSpan(lockTimeout, "--pg.lock-timeout")
        // PostgreSQL's own limit for both settings (an int of milliseconds); more fails every SET.
        for (flag, span) in [("--pg.statement-timeout", statement), ("--pg.lock-timeout", lock)] where span.milliseconds > Int(Int32.max) {
            throw ValidationError("\(flag): at most 2147483647ms (24d20h31m23s), PostgreSQL's limit")
        }
        var settings = ConnectionSettings(
            dsn: resolved,
            connectTimeoutSeconds: try connectTimeoutSeconds(),
            applicationName: applicationName,
            statementTimeoutMilliseconds: statement.milliseconds,
            lockTimeoutMilliseconds: lock.milliseconds)
        settings.password = password
        return settings
    }

    private func connectTimeoutSeconds() throws -> Double {
        let seconds = try parseDuration(connectTimeout, "--pg.connect-timeout")
        guard seconds >= 0.1 else { throw ValidationError("--pg.connect-timeout: at least 100ms") }
        return seconds
    }
}

/// Parses a duration flag to seconds (at most 365 days), naming the flag in the error.
func parseDuration(_ text: String, _ flag: String) throws -> Double {
    try parseTimeSpan(text, flag).seconds
}

/// Parses a duration flag (at most 365 days), naming the flag in the error.
func parseTimeSpan(_ text: String, _ flag: String) throws -> TimeSpan {
    do {
        return try DurationText.timeSpan(text)
    } catch {
        throw ValidationError("\(flag): \(error)")
    }
}
