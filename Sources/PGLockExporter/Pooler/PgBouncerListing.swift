/// What one pooler said at one moment: its server connections, its clients and its pools
/// (`SHOW SERVERS`, `SHOW CLIENTS`, `SHOW POOLS`).
///
/// The admin console takes one command per query, so the three are read one after another on
/// one connection, about a millisecond apart. Pointers (`ptr`, `link`) are addresses of
/// PgBouncer's own structures and are reused at once after a disconnect: the join never trusts
/// a pointer alone (`PoolerJoin`).
public struct PgBouncerListing: Sendable, Equatable {
    /// The pooler's name (`PgBouncerEndpoint.name`).
    public var pgbouncer: String
    public var servers: [Server]
    public var clients: [Client]
    public var pools: [Pool]

    /// One server connection: PgBouncer's connection to PostgreSQL.
    public struct Server: Sendable, Equatable {
        /// PgBouncer's end of the connection: the backend's `client_addr` and `client_port`
        /// (`unix` and 0 over a Unix socket).
        public var localAddr: String
        public var localPort: Int
        /// The backend's pid as the server announced it: 0 when unknown; through a second
        /// pooler, that pooler's made-up pid.
        public var remotePID: Int
        public var ptr: String
        /// The `ptr` of the client it serves now; nil when idle in the pool.
        public var link: String?
        public var database: String
        public var user: String
    }

    /// One client connection: an application's connection to PgBouncer.
    public struct Client: Sendable, Equatable {
        /// The application's address and source port (`unix` and the port for a socket client).
        public var addr: String
        public var port: Int
        public var ptr: String
        /// The `ptr` of the server it is linked to; nil while it has none.
        public var link: String?
        public var user: String
        public var database: String
        public var applicationName: String
        /// As PgBouncer prints it: `2026-12-05 15:02:11 UTC` (seconds, in the pooler's clock).
        public var connectTime: String
        public var state: String
    }

    /// One pool (database and user): how many clients wait in the pooler for a server.
    public struct Pool: Sendable, Equatable {
        public var database: String
        public var user: String
        /// `cl_waiting`: clients that sent a query and wait for a server connection. PostgreSQL
        /// never sees them; behind a session that holds its server in a transaction, they are
        /// blocked as surely as a lock waiter.
        public var clientsWaiting: Int
    }

    public init(pgbouncer: String, servers: [Server], clients: [Client], pools: [Pool]) {
        self.pgbouncer = pgbouncer
        self.servers = servers
        self.clients = clients
        self.pools = pools
    }

    /// Builds the listing from the three tables. Rows without what the join needs (an address,
    /// a port, a pointer) are dropped: they could only ever match by accident.
    public init(pgbouncer: String, servers: PgBouncerTable, clients: PgBouncerTable, pools: PgBouncerTable) {
        self.pgbouncer = pgbouncer
        self.servers = servers.records().compactMap { r in
            guard let addr = r["local_addr"], let port = r.integer("local_port"), let ptr = r["ptr"] else { return nil }
            return Server(
                localAddr: addr, localPort: port, remotePID: r.integer("remote_pid") ?? 0, ptr: ptr, link: r["link"],
                database: r["database"] ?? "", user: r["user"] ?? "")
        }
        self.clients = clients.records().compactMap { r in
            guard let addr = r["addr"], let port = r.integer("port"), let ptr = r["ptr"] else { return nil }
            return Client(
                addr: addr, port: port, ptr: ptr, link: r["link"], user: r["user"] ?? "", database: r["database"] ?? "",
                applicationName: r["application_name"] ?? "", connectTime: r["connect_time"] ?? "", state: r["state"] ?? "")
        }
        self.pools = pools.records().compactMap { r in
            guard let database = r["database"] else { return nil }
            return Pool(database: database, user: r["user"] ?? "", clientsWaiting: r.integer("cl_waiting") ?? 0)
        }
    }

    /// Reads the three lists on an admin-console connection, all before `deadline`.
    static func read(on connection: PostgresConnection, pgbouncer: String, deadline: Deadline) throws -> PgBouncerListing {
        // Servers first: a client seen linked to a server read a moment earlier is checked
        // against that server's own link (`PoolerJoin`), so a pointer reused in between is caught.
        let servers = try connection.simpleQuery("SHOW SERVERS", deadline: deadline) { PgBouncerTable($0) }
        let clients = try connection.simpleQuery("SHOW CLIENTS", deadline: deadline) { PgBouncerTable($0) }
        let pools = try connection.simpleQuery("SHOW POOLS", deadline: deadline) { PgBouncerTable($0) }
        return PgBouncerListing(pgbouncer: pgbouncer, servers: servers, clients: clients, pools: pools)
    }
}
