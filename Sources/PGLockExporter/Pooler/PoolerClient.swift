/// The application client behind PgBouncer that a backend serves: where the transaction really
/// comes from, when `pg_stat_activity.client_addr` only names the pooler.
public struct PoolerClient: Sendable, Equatable, Codable {
    /// The pooler's name (`PgBouncerEndpoint.name`: its admin console's `host:port`).
    public var pgbouncer: String
    /// The application's address and source port, as PgBouncer saw them.
    public var addr: String
    public var port: Int
    /// The user and database the client logged in to PgBouncer with (the pool's).
    public var usename: String
    public var database: String
    public var applicationName: String
    /// When the client connected to PgBouncer, as the pooler prints it (UTC, whole seconds).
    public var connectTime: String

    public init(
        pgbouncer: String, addr: String, port: Int, usename: String, database: String, applicationName: String, connectTime: String
    ) {
        self.pgbouncer = pgbouncer
        self.addr = addr
        self.port = port
        self.usename = usename
        self.database = database
        self.applicationName = applicationName
        self.connectTime = connectTime
    }

    enum CodingKeys: String, CodingKey {
        case pgbouncer, addr, port, usename, database, applicationName = "application_name", connectTime = "connect_time"
    }

    /// `127.0.0.2:51234` (`[::1]:51234` for IPv6): the `pgbouncer_client` label and the
    /// start of every line that names the client.
    public var endpoint: String { addr.contains(":") ? "[\(addr)]:\(port)" : "\(addr):\(port)" }

    /// The clock time of `connectTime` (`15:02:11`), or all of it when it has another shape.
    public var connectClockTime: String {
        let parts = connectTime.split(separator: " ")
        return parts.count >= 2 ? String(parts[1]) : connectTime
    }

    /// `client=10.1.4.7:51234 via pgbouncer 10.0.0.5:6432, client connected 15:02:11`: how
    /// `check`, `remediate` and the log name the client (terminal-safe where printed).
    public var phrase: String {
        "client=\(endpoint) via pgbouncer \(pgbouncer)" + (connectTime.isEmpty ? "" : ", client connected \(connectClockTime)")
    }
}
