/// One PgBouncer in front of a target, as configured: its admin console's DSN (`dbname=pgbouncer`,
/// a user in `stats_users`) and a password kept apart from the DSN.
public struct PgBouncerEndpoint: Sendable, Equatable {
    public var dsn: String
    public var password: String?
    /// `host:port` from the DSN (libpq's defaults where it sets none): the `pgbouncer` label,
    /// and how every line names the pooler.
    public let name: String

    /// Checks the DSN without connecting: one line on what is wrong, never a fragment of it that
    /// could be a secret.
    public init(dsn: String, password: String? = nil) throws(PostgresError) {
        let options = try ConnectionString.parse(dsn)
        func value(_ key: String) -> String? { options.first { $0.key == key }?.value }
        guard value("password") == nil else {
            throw PostgresError(kind: .connection, message: "put the pooler's password in a password file or the environment, not in its DSN")
        }
        guard value("dbname") == "pgbouncer" else {
            throw PostgresError(kind: .connection, message: "a pooler's DSN names its admin console: dbname=pgbouncer")
        }
        let host = value("host") ?? value("hostaddr") ?? "localhost"
        let port = value("port") ?? "5432"
        guard !host.contains(","), !port.contains(",") else {
            throw PostgresError(kind: .connection, message: "a pooler's DSN names one pooler: one host and one port")
        }
        self.dsn = dsn
        self.password = password
        name = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
