/// How to open a connection: the user's connection string plus the tool's own settings.
public struct ConnectionSettings: Sendable {
    /// A libpq connection string or URI; empty means libpq's defaults (PGHOST, PGUSER, ...).
    public var dsn: String
    /// Seconds a connect may take, every address of a multi-host DSN together. A
    /// `connect_timeout` in the DSN wins. The caller's deadline caps it further.
    public var connectTimeoutSeconds: Double
    /// Always set, so operators can recognise (and exclude) our session in `pg_stat_activity`.
    public var applicationName: String
    /// Server-side guards for every statement of the session, in milliseconds (0 = off).
    public var statementTimeoutMilliseconds: Int
    public var lockTimeoutMilliseconds: Int
    /// A password kept apart from the DSN (read from a file or the environment), so it never
    /// appears in a connection string that could be logged. Wins over one in the DSN.
    public var password: String?
    /// Shared by the successive connections of one target, so that cancel requests against a
    /// path that hangs never pile up (`PostgresCanceller`). nil: one gate per connection.
    public var cancelGate: CancelGate?

    public init(
        dsn: String, connectTimeoutSeconds: Double = 5, applicationName: String = "pg_lock_exporter",
        statementTimeoutMilliseconds: Int = 5000, lockTimeoutMilliseconds: Int = 1000
    ) {
        self.dsn = dsn
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
    }

    /// The client-side bound of one statement when the caller gives none: the server-side
    /// `statement_timeout` plus a second, so the server's own, clean cancellation comes first and
    /// the client deadline only fires when the server does not answer at all.
    public var defaultStatementDeadline: Deadline {
        Deadline.after(seconds: Double(statementTimeoutMilliseconds) / 1000 + 1)
    }

    /// TCP settings applied unless the DSN sets them: keepalives find a peer that vanished while
    /// the connection sat idle between scrapes (after about 10 + 3 × 5 s), and `tcp_user_timeout`
    /// drops a connection whose sent data stays unacknowledged for 10 s, instead of the kernel's
    /// 15 minutes of retransmissions. libpq ignores them on Unix sockets.
    static let tcpDefaults: [(String, String)] = [
        ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ]
}
