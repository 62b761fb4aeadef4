import ArgumentParser
import FoundationEssentials
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter check`: the one-shot diagnosis to run when a migration hangs.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show who blocks whom: each blocking tree, root blocker first, and sessions idle in transaction.",
        discussion: """
            Exit status: 0 when nothing you asked to fail on was found, 1 when it was \
            (--fail-on-blocking, --fail-on-idle-in-transaction), 2 when PostgreSQL cannot be read.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup(title: "PgBouncer (name the application client behind the pooler)") var pgbouncer: PgBouncerOptions

    @Option(name: .customLong("format"), help: "text (for people) or json (one object: server, sessions, blocking_trees, cycles).")
    var format: String = "text"

    @Flag(name: .customLong("no-color"), help: "Never colour the text output (it is coloured only on a terminal anyway).")
    var noColor = false

    @Option(name: .customLong("query-chars"), help: "Characters of each session's query to show; 0 hides queries (they may carry data).")
    var queryChars: Int = 80

    @Flag(name: .customLong("all-databases"), help: "Report every database of the server (default: only the DSN's database).")
    var allDatabases = false

    @Flag(name: .customLong("fail-on-blocking"), help: "Exit 1 when any session is blocked (run it before a migration).")
    var failOnBlocking = false

    @Option(
        name: .customLong("fail-on-idle-in-transaction"),
        help: ArgumentHelp("Exit 1 when a session has been idle in transaction this long, e.g. 5m.", valueName: "duration"))
    var failOnIdle: String?

    func validate() throws {
        guard format == "text" || format == "json" else { throw ValidationError("--format: \"\(format)\" is not one of text, json") }
        guard queryChars >= 0 else { throw ValidationError("--query-chars: must be 0 or more") }
        if let failOnIdle { _ = try parseDuration(failOnIdle, "--fail-on-idle-in-transaction") }
    }

    func run() throws {
        let settings = try connection.settings(applicationName: "pg_lock_exporter check")
        let interruption = Interruption.install(command: "pg_lock_exporter check")
        var snapshot: ActivitySnapshot
        let database: String
        do {
            let db = try PostgresConnection(settings)
            interruption.watch(db)
            database = db.database
            snapshot = try db.readSnapshot(
                queryCharacters: queryChars, lockDetails: true, statementTimeoutMilliseconds: settings.statementTimeoutMilliseconds)
        } catch {
            printError("pg_lock_exporter check: cannot read PostgreSQL: \(error)")
            throw ExitStatus.connectionOrUsage
        }
        // Right after PostgreSQL: a backend in a transaction stays linked to its client.
        PoolerJoin.attach(try pgbouncer.readOnce(connection: settings, command: "pg_lock_exporter check"), to: &snapshot.sessions)
        let report = BlockingReport(
            snapshot: snapshot, graph: BlockingGraph(sessions: snapshot.sessions), database: allDatabases ? nil : database)
        if format == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let color = !noColor && isatty(1) == 1 && getenv("NO_COLOR") == nil
            print(BlockingReportText(report, color: color).render(), terminator: "")
        }
        if snapshot.hasHiddenSessions {
            printError("warning: some sessions' state is hidden; grant pg_monitor to this role to see them")
        }
        if failOnBlocking && report.server.blockedSessions > 0 { throw ExitStatus.finding }
        if let failOnIdle {
            let limit = try parseDuration(failOnIdle, "--fail-on-idle-in-transaction")
            if report.sessions.contains(where: { Session.isIdleInTransaction($0.state) && ($0.stateSeconds ?? 0) >= limit }) {
                throw ExitStatus.finding
            }
        }
    }
}
