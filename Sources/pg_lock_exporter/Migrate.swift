import ArgumentParser
import Logging
import FoundationEssentials
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter migrate [options] -- COMMAND [ARGS...]`: run a migration so that a
/// forgotten transaction cannot stall the application.
struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a migration command under a short lock_timeout, a watchdog and bounded retries.",
        usage: "pg_lock_exporter migrate [options] -- COMMAND [ARGS...]",
        discussion: """
            The command gets PGOPTIONS="-c lock_timeout=..." and PGAPPNAME (a random tag of this run), and runs \
            in a process group of its own; signals go to the group. On its own connection the guard finds the \
            command's sessions in its database (by the tag, or by the client address and port of its processes' \
            connected sockets), prints the blocking tree each waits in, cancels a wait longer than --max-lock-wait \
            (the driver ignored the timeout), and retries an attempt that provably lost on a lock (55P03 in its \
            output, or a wait the guard cancelled), with backoff and jitter.
            Exit status: the command's own on success and on other failures; 75 when the attempts or the time \
            ran out on lock failures, --require-clear refused, or another migration holds (or took over) the \
            advisory lock; 2 on usage errors or when PostgreSQL cannot be reached (unless --unwatched).
            """)

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup(title: "PgBouncer (the migration connects through it)") var pgbouncer: PgBouncerOptions

    @Option(name: .customLong("lock-timeout"), help: "The migration's lock_timeout (sent in PGOPTIONS).")
    var lockTimeout: String = "1s"

    @Option(name: .customLong("statement-timeout"), help: "Also give the migration this statement_timeout.")
    var statementTimeout: String?

    @Flag(
        name: .customLong("no-pgoptions"),
        help: "Leave PGOPTIONS alone (a pooler that rejects the startup options): set lock_timeout on the role; the watchdog still cuts waits.")
    var noPGOptions = false

    @Option(name: .customLong("max-lock-wait"), help: "Cancel a migration session's lock wait after this long (default: --lock-timeout + 1s).")
    var maxLockWait: String?

    @Option(name: .customLong("poll-interval"), help: "Look at the migration's sessions this often.")
    var pollInterval: String = "200ms"

    @Option(name: .customLong("retries"), help: "Retries after an attempt that failed on a lock.")
    var retries: Int = 10

    @Option(name: .customLong("retry-delay"), help: "Ceiling of the first retry's delay; it doubles each retry (full jitter).")
    var retryDelay: String = "1s"

    @Option(name: .customLong("max-retry-delay"), help: "The delay ceiling never grows past this.")
    var maxRetryDelay: String = "30s"

    @Option(name: .customLong("max-duration"), help: "Start no attempt after this long.")
    var maxDuration: String = "15m"

    @Flag(name: .customLong("require-clear"), help: "Refuse to start (exit 75) while blocking trees or idle-in-transaction sessions holding locks are there.")
    var requireClear = false

    @Option(name: .customLong("wait-clear"), help: ArgumentHelp("Before the first attempt, wait up to this long for them to go.", valueName: "duration"))
    var waitClear: String?

    @Option(
        name: .customLong("terminate-idle-after"),
        help: ArgumentHelp(
            "Terminate a root blocker the migration waits behind once it has been idle in transaction this long (as remediate --execute).",
            valueName: "duration"))
    var terminateIdleAfter: String?

    @OptionGroup(title: "Sessions never terminated (with --terminate-idle-after)") var exclusions: ExclusionOptions

    @Option(name: .customLong("max-terminations"), help: "With --terminate-idle-after: at most this many terminations per run.")
    var maxTerminations: Int = 10

    @Option(name: .customLong("audit-log"), help: ArgumentHelp("Append one JSON line per termination to this file.", valueName: "file"))
    var auditLog: String?

    @Option(name: .customLong("lock-key"), help: "Advisory lock key that keeps migrations one at a time (default: the tool's own).")
    var lockKey: Int64 = MigrationSettings.defaultLockKey

    @Option(name: .customLong("wait-lock"), help: "Wait this long for another migration holding the lock key, then exit 75.")
    var waitLock: String = "1m"

    @Flag(name: .customLong("unwatched"), help: "Run the migration even when PostgreSQL cannot be reached (lock_timeout only).")
    var unwatched = false

    @Option(name: .customLong("format"), help: "Guard output on stderr: text (migrate: lines) or json (one event a line).")
    var format: String = "text"

    @Option(name: .customLong("query-chars"), help: "Characters of each blocker's query to show; 0 hides queries.")
    var queryChars: Int = 80

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The migration command, after --.", valueName: "command"))
    var command: [String] = []

    func run() throws {
        let settings: MigrationSettings
        do {
            settings = try makeSettings()
        } catch let error as ValidationError {
            printError("pg_lock_exporter migrate: \(error.message)")
            Glibc.exit(MigrationExit.usage)
        }
        let status = MigrationGuard(settings).run()
        fflush(nil)  // every open output stream
        Glibc.exit(status)
    }

    /// Every flag checked, with a one-line error naming it; nothing has started yet.
    private func makeSettings() throws -> MigrationSettings {
        guard let executable = command.first else {
            throw ValidationError("no migration command: give it after --, e.g. pg_lock_exporter migrate -- alembic upgrade head")
        }
        let environment = ProcessInfo.processInfo.environment
        guard MigrationChild.resolve(executable, path: environment["PATH"]) != nil else {
            throw ValidationError("command not found: \(executable)")
        }
        guard format == "text" || format == "json" else { throw ValidationError("--format: \"\(format)\" is not one of text, json") }
        guard queryChars >= 0 else { throw ValidationError("--query-chars: must be 0 or more") }
        guard retries >= 0 else { throw ValidationError("--retries: must be 0 or more") }
        var settings = MigrationSettings(
            command: command, environment: environment,
            connection: try connection.settings(applicationName: "pg_lock_exporter migrate"))
        settings.lockTimeout = try parseTimeSpan(lockTimeout, "--lock-timeout")
        guard settings.lockTimeout >= .milliseconds(1) else { throw ValidationError("--lock-timeout: must be at least 1ms (0 would disable it)") }
        guard settings.lockTimeout <= MigrationSettings.maximumServerTimeout else {
            throw ValidationError("--lock-timeout: at most 2147483647ms (PostgreSQL's limit, about 24.8 days)")
        }
        // PgBouncer refuses the startup parameter `options` ("unsupported startup parameter:
        // options"): a child that connects through it would not connect at all with PGOPTIONS set.
        settings.poolers = try pgbouncer.poolers(try pgbouncer.endpoints(), connection: settings.connection, logger: Logger(label: "migrate") { _ in SwiftLogNoOpLogHandler() })
        settings.setPGOptions = !noPGOptions && settings.poolers == nil
        settings.statementTimeout = try statementTimeout.map { try parseTimeSpan($0, "--statement-timeout") }
        if let s = settings.statementTimeout, s < .milliseconds(1) { throw ValidationError("--statement-timeout: must be at least 1ms") }
        if let s = settings.statementTimeout, s > MigrationSettings.maximumServerTimeout {
            throw ValidationError("--statement-timeout: at most 2147483647ms (PostgreSQL's limit, about 24.8 days)")
        }
        settings.maxLockWait = try maxLockWait.map { try parseTimeSpan($0, "--max-lock-wait") }
        settings.pollInterval = try parseTimeSpan(pollInterval, "--poll-interval")
        guard settings.pollInterval >= .milliseconds(50) else { throw ValidationError("--poll-interval: must be at least 50ms") }
        settings.retry = RetryPolicy(
            retries: retries, baseDelay: try parseTimeSpan(retryDelay, "--retry-delay"),
            maxDelay: try parseTimeSpan(maxRetryDelay, "--max-retry-delay"),
            maxDuration: try parseTimeSpan(maxDuration, "--max-duration"))
        settings.requireClear = requireClear
        settings.waitClear = try waitClear.map { try parseTimeSpan($0, "--wait-clear") }
        settings.terminateIdleAfter = try terminateIdleAfter.map { try parseTimeSpan($0, "--terminate-idle-after") }
        try exclusions.apply(to: &settings.policy)
        guard maxTerminations >= 0 else { throw ValidationError("--max-terminations: must be 0 or more") }
        settings.policy.maxTerminations = maxTerminations
        if let auditLog {
            do { settings.audit = try AuditLog(path: auditLog) } catch { throw ValidationError("\(error)") }
        }
        settings.lockKey = lockKey
        settings.waitLock = try parseTimeSpan(waitLock, "--wait-lock")
        settings.unwatched = unwatched
        settings.queryCharacters = queryChars
        settings.format = format == "json" ? .json : .text
        return settings
    }
}
