/// Everything `pg_lock_exporter migrate` was asked to do, validated by the command line.
public struct MigrationSettings: Sendable {
    /// The migration command and its arguments (what follows `--`).
    public var command: [String]
    /// The guard's environment, which the child inherits with PGOPTIONS and PGAPPNAME added.
    public var environment: [String: String]
    /// The guard's own connection (`--dsn`, the deadline connection).
    public var connection: ConnectionSettings
    /// The child's `lock_timeout` (`--lock-timeout`).
    public var lockTimeout: TimeSpan = .seconds(1)
    /// The child's `statement_timeout`, when asked (`--statement-timeout`).
    public var statementTimeout: TimeSpan?
    /// Put the timeouts in the child's PGOPTIONS (not with `--no-pgoptions`, nor through PgBouncer).
    public var setPGOptions = true
    /// The PgBouncers the child connects through (`--pgbouncer.dsn`): its sessions are found
    /// through them (`PoolerJoin.backendEndpoints`).
    public var poolers: TargetPoolers?
    /// A wait longer than this is cancelled (`--max-lock-wait`; default lock_timeout + 1s).
    public var maxLockWait: TimeSpan?
    public var pollInterval: TimeSpan = .milliseconds(200)
    public var retry = RetryPolicy()
    /// Refuse to start while the database has blocking trees or idle-in-transaction sessions
    /// holding locks (`--require-clear`); `waitClear` waits for them to go first.
    public var requireClear = false
    public var waitClear: TimeSpan?
    /// Terminate root blockers idle in transaction this long that the migration waits behind.
    public var terminateIdleAfter: TimeSpan?
    /// The exclusions of `remediate` (`--exclude-*`, `--only-database`, `--max-terminations`).
    public var policy = RemediationPolicy()
    public var audit: AuditLog?
    /// The advisory lock that keeps migrations one at a time (`--lock-key`), and how long a
    /// second guard waits for it (`--wait-lock`).
    public var lockKey: Int64 = MigrationSettings.defaultLockKey
    public var waitLock: TimeSpan = .seconds(60)
    /// Run the migration even when the guard cannot reach the server (`--unwatched`).
    public var unwatched = false
    /// Characters of query text shown in the blocking trees, as `check --query-chars`.
    public var queryCharacters = 80
    public var format: MigrationEventOutput.Format = .text

    /// The key every guard takes unless told otherwise: "pglockmg" in ASCII.
    public static let defaultLockKey: Int64 = 0x7067_6c6f_636b_6d67

    public init(command: [String], environment: [String: String], connection: ConnectionSettings) {
        self.command = command
        self.environment = environment
        self.connection = connection
    }

    var effectiveMaxLockWait: TimeSpan { maxLockWait ?? lockTimeout + .seconds(1) }

    /// The largest `lock_timeout` and `statement_timeout` PostgreSQL accepts (an `int` of
    /// milliseconds, about 24.8 days): a longer one would make the migration's connection fail.
    public static let maximumServerTimeout = TimeSpan.milliseconds(Int(Int32.max))
}

/// The exit statuses of `migrate` besides the child's own.
public enum MigrationExit {
    /// EX_TEMPFAIL: attempts or time ran out on lock failures, `--require-clear` refused, or the
    /// advisory lock was not had. Try again later.
    public static let temporaryFailure: Int32 = 75
    /// A usage error, or the server could not be reached.
    public static let usage: Int32 = 2
}
