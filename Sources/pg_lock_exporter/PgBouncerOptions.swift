import ArgumentParser
import Logging
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The PgBouncers in front of the database (`serve`, `check`, `remediate`, `migrate`): with them,
/// a backend is named by the application client behind the pooler, not only by the pooler.
struct PgBouncerOptions: ParsableArguments {
    @Option(
        name: .customLong("pgbouncer.dsn"),
        help: ArgumentHelp(
            "A PgBouncer admin console in front of the database (dbname=pgbouncer, a user in stats_users); repeat for each pooler.",
            valueName: "conninfo"))
    var dsns: [String] = []

    @Option(
        name: .customLong("pgbouncer.password-file"),
        help: ArgumentHelp("File holding the admin console user's password (every --pgbouncer.dsn). Default: $PGBOUNCER_PASSWORD_FILE.", valueName: "file"))
    var passwordFile: String?

    @Option(
        name: .customLong("pgbouncer.timeout"),
        help: ArgumentHelp("A pooler read (connect included) gives up after this long, within the scrape's own timeout.", valueName: "duration"))
    var timeout: String = "2s"

    /// The configured poolers, checked: one line on what is wrong, never the password.
    func endpoints() throws -> [PgBouncerEndpoint] {
        guard !dsns.isEmpty else { return [] }
        var password: String?
        if let file = passwordFile ?? getenv("PGBOUNCER_PASSWORD_FILE").map({ String(cString: $0) }) {
            let flag = passwordFile != nil ? "--pgbouncer.password-file" : "PGBOUNCER_PASSWORD_FILE"
            do { password = try TextFile.secret(file) } catch { throw ValidationError("\(flag) \(error)") }
        }
        var endpoints: [PgBouncerEndpoint] = []
        for (position, dsn) in dsns.enumerated() {
            do {
                endpoints.append(try PgBouncerEndpoint(dsn: dsn, password: password))
            } catch {
                throw ValidationError("--pgbouncer.dsn (#\(position + 1)): \(error.message)")
            }
            if endpoints.dropLast().contains(where: { $0.name == endpoints.last!.name }) {
                throw ValidationError("--pgbouncer.dsn (#\(position + 1)): \(endpoints.last!.name) is named twice")
            }
        }
        return endpoints
    }

    func timeSpan() throws -> TimeSpan {
        let span = try parseTimeSpan(timeout, "--pgbouncer.timeout")
        guard span >= .milliseconds(100) else { throw ValidationError("--pgbouncer.timeout: at least 100ms") }
        return span
    }

    /// The poolers of `endpoints` for one target; nil when there are none.
    func poolers(_ endpoints: [PgBouncerEndpoint], connection: ConnectionSettings, logger: Logger) throws -> TargetPoolers? {
        guard !endpoints.isEmpty else { return nil }
        let timeout = try timeSpan()
        return TargetPoolers(
            endpoints, timeout: timeout, connectTimeoutSeconds: min(connection.connectTimeoutSeconds, timeout.seconds),
            applicationName: connection.applicationName, logger: logger)
    }

    /// For a one-shot command: the poolers of the flags read once, within their timeout; the
    /// listings that could be read (a pooler that could not costs only its own names: a warning
    /// on stderr says which and why).
    func readOnce(connection: ConnectionSettings, command: String) throws -> [PgBouncerListing] {
        guard let poolers = try poolers(try endpoints(), connection: connection, logger: Logger(label: command) { _ in SwiftLogNoOpLogHandler() })
        else { return [] }
        let readings = poolers.read(until: .after(try timeSpan()))
        poolers.close()
        for reading in readings where reading.listing == nil {
            printError("warning: cannot read PgBouncer \(reading.pgbouncer): \(reading.error ?? "unknown error"); its clients are not named")
        }
        return readings.compactMap(\.listing)
    }
}
