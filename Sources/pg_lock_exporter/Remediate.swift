import ArgumentParser
import FoundationEssentials
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter remediate`: end the idle-in-transaction root blockers, safely.
struct Remediate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Terminate the sessions at the root of blocking chains (dry run unless --execute).",
        discussion: """
            Default targets: root blockers idle in transaction for at least --min-idle that block \
            at least one session. Never the waiting migration, never a session that is itself \
            waiting, never a non-client backend or this command's own session. Each termination \
            re-checks pid, backend_start, state and state_change in the same statement.
            Exit status: 0 when every decision succeeded or there was nothing to do, 1 when a \
            termination failed or a named --pid was refused, 2 on connection or usage errors.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup(title: "PgBouncer (name the application client behind the pooler)") var pgbouncer: PgBouncerOptions
    @OptionGroup var remediation: RemediationOptions

    @Option(name: .customLong("pid"), help: "Only this session. Refused unless idle in transaction, or --force.")
    var pid: Int32?

    @Flag(name: .customLong("force"), help: "With --pid: terminate it even when it is not idle in transaction.")
    var force = false

    @Option(name: .customLong("format"), help: "text (one line per decision) or json.")
    var format: String = "text"

    @OptionGroup(title: "Webhook service (alert-triggered remediation)") var webhook: WebhookOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard format == "text" || format == "json" else { throw ValidationError("--format: \"\(format)\" is not one of text, json") }
        if force && pid == nil { throw ValidationError("--force: only with --pid") }
        if let pid, pid <= 0 { throw ValidationError("--pid: must be a positive process id") }
        if webhook.listen != nil && pid != nil { throw ValidationError("--pid: not with --listen (the webhook acts on root blockers)") }
    }

    func run() throws {
        if webhook.listen != nil {
            try webhook.serve(
                connection: connection, remediation: remediation, pgbouncer: pgbouncer, logger: logging.makeLogger("pg_lock_exporter"))
            return
        }
        let settings = try connection.settings(applicationName: "pg_lock_exporter remediate")
        let policy = try remediation.policy(pid: pid, force: force)
        let audit = try remediation.openAuditLog()
        let interruption = Interruption.install(command: "pg_lock_exporter remediate")
        let poolers = try pgbouncer.poolers(try pgbouncer.endpoints(), connection: settings, logger: logging.makeLogger("pg_lock_exporter"))
        let decisions: [Decision]
        do {
            let db = try PostgresConnection(settings)
            interruption.watch(db)
            decisions = try Remediator(
                policy: policy, execute: remediation.execute, allDatabases: remediation.allDatabases,
                statementTimeoutMilliseconds: settings.statementTimeoutMilliseconds, poolers: poolers
            ).run(on: db)
        } catch {
            printError("pg_lock_exporter remediate: cannot read PostgreSQL: \(error)")
            throw ExitStatus.connectionOrUsage
        }
        if format == "json" {
            struct Output: Encodable {
                var dryRun: Bool
                var decisions: [Decision]
                enum CodingKeys: String, CodingKey { case dryRun = "dry_run", decisions }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(Output(dryRun: !remediation.execute, decisions: decisions)), as: UTF8.self))
        } else {
            for decision in decisions { print(decision.summary) }
            print(summaryLine(decisions))
        }
        // The decisions are printed first: a failing audit log must not hide what was done.
        do { try audit?.append(decisions) } catch {
            printError("pg_lock_exporter remediate: \(error)")
            throw ExitStatus.finding
        }
        // A session that changed before the kill was skipped by design; a policy refusal of the
        // session the user named is a failure to do what was asked.
        let failed = decisions.contains { $0.result == .failed }
        let pidRefused = pid != nil && decisions.contains { $0.action == .skip }
        if failed || pidRefused { throw ExitStatus.finding }
    }

    private func summaryLine(_ decisions: [Decision]) -> String {
        let targets = decisions.filter { $0.action == .terminate }.count
        if decisions.isEmpty { return "Nothing to do: no session matches the policy." }
        if !remediation.execute {
            return targets == 0
                ? "Dry run: nothing would be terminated."
                : "Dry run: \(targets) session\(targets == 1 ? "" : "s") would be terminated. Run again with --execute to act."
        }
        let done = decisions.filter { $0.result == .terminated }.count
        let failed = decisions.filter { $0.result == .failed }.count
        return "Terminated \(done) session\(done == 1 ? "" : "s")" + (failed > 0 ? ", \(failed) failed." : ".")
    }
}
