import ArgumentParser
import PGLockExporter

/// The remediation policy's flags, shared by the one-shot run and the webhook service.
struct RemediationOptions: ParsableArguments {
    @Flag(name: .customLong("execute"), help: "Terminate the targets. Without it, only print what would be done.")
    var execute = false

    @Option(name: .customLong("min-idle"), help: "Only sessions idle in transaction at least this long.")
    var minIdle: String = "60s"

    @Flag(
        name: .customLong("all-idle-in-transaction"),
        help: "Every session idle in transaction past --min-idle, blocking or not (default: root blockers only).")
    var allIdleInTransaction = false

    @Flag(name: .customLong("all-databases"), help: "Act on every database of the server (default: only the DSN's database).")
    var allDatabases = false

    @OptionGroup var exclusions: ExclusionOptions

    @Option(name: .customLong("max-terminations"), help: "At most this many terminations per run.")
    var maxTerminations: Int = 10

    @Option(name: .customLong("audit-log"), help: ArgumentHelp("Append one JSON line per decision to this file.", valueName: "file"))
    var auditLog: String?

    func validate() throws { _ = try policy(pid: nil, force: false) }

    /// The `--audit-log` file, opened once to check it is writable before anything is done.
    func openAuditLog() throws -> AuditLog? {
        do { return try auditLog.map { try AuditLog(path: $0) } } catch { throw ValidationError("\(error)") }
    }

    /// The policy these flags describe; every regular expression is checked here.
    func policy(pid: Int32?, force: Bool) throws -> RemediationPolicy {
        var policy = RemediationPolicy()
        policy.minIdleSeconds = try parseDuration(minIdle, "--min-idle")
        policy.allIdleInTransaction = allIdleInTransaction
        policy.pid = pid
        policy.force = force
        guard maxTerminations >= 0 else { throw ValidationError("--max-terminations: must be 0 or more") }
        policy.maxTerminations = maxTerminations
        try exclusions.apply(to: &policy)
        return policy
    }
}

/// The sessions remediation never touches, shared by `remediate` and `migrate
/// --terminate-idle-after`.
struct ExclusionOptions: ParsableArguments {
    @Option(name: .customLong("exclude-application"), help: "Never terminate sessions whose application_name matches (regex, repeatable).")
    var excludeApplication: [String] = []

    @Option(name: .customLong("exclude-user"), help: "Never terminate sessions of users matching (regex, repeatable).")
    var excludeUser: [String] = []

    @Option(name: .customLong("exclude-database"), help: "Never terminate sessions in databases matching (regex, repeatable).")
    var excludeDatabase: [String] = []

    @Option(name: .customLong("only-database"), help: "Only sessions in databases matching (regex, repeatable).")
    var onlyDatabase: [String] = []

    /// Sets the policy's patterns; every regular expression is checked here.
    func apply(to policy: inout RemediationPolicy) throws {
        func patterns(_ values: [String], _ flag: String) throws -> [RemediationPolicy.Pattern] {
            try values.map { value in
                do { return try RemediationPolicy.Pattern(value) } catch {
                    throw ValidationError("\(flag): \"\(value)\" is not a valid regular expression")
                }
            }
        }
        policy.excludeApplications = try patterns(excludeApplication, "--exclude-application")
        policy.excludeUsers = try patterns(excludeUser, "--exclude-user")
        policy.excludeDatabases = try patterns(excludeDatabase, "--exclude-database")
        policy.onlyDatabases = try patterns(onlyDatabase, "--only-database")
    }
}
