import PropertyBased
import Testing

@testable import PGLockExporter

/// `PoolerJoin`: exact cases for each rule, and random listings (addresses, ports, pointers and
/// pids drawn from small sets, so collisions, reused pointers and one-way links are common)
/// against a brute-force oracle.
@Suite struct PoolerJoinTests {
    typealias Server = PgBouncerListing.Server
    typealias Client = PgBouncerListing.Client

    static func session(_ pid: Int32, _ addr: String, _ port: Int?) -> Session {
        Session(
            pid: pid, datname: "app", usename: "u", applicationName: "", clientAddr: addr, backendType: "client backend",
            state: "idle in transaction", stateSeconds: 1, transactionSeconds: 1, waitingOnLock: false, blockedBy: [],
            lockWaitSeconds: nil, backendStart: nil, stateChange: nil, query: nil, clientPort: port)
    }

    static func server(_ addr: String, _ port: Int, pid: Int = 0, ptr: String, link: String?) -> Server {
        Server(localAddr: addr, localPort: port, remotePID: pid, ptr: ptr, link: link, database: "app", user: "u")
    }

    static func client(_ addr: String, _ port: Int, ptr: String, link: String?) -> Client {
        Client(
            addr: addr, port: port, ptr: ptr, link: link, user: "u", database: "app", applicationName: "worker",
            connectTime: "2026-12-05 05:02:35 UTC", state: "active")
    }

    static func attach(_ listings: [PgBouncerListing], _ sessions: [Session]) -> [PoolerClient?] {
        var sessions = sessions
        PoolerJoin.attach(listings, to: &sessions)
        return sessions.map(\.poolerClient)
    }

    @Test func aBackendIsJoinedByItsAddressAndTheLinkBothWays() {
        let listing = PgBouncerListing(
            pgbouncer: "10.0.0.5:6432", servers: [Self.server("10.0.0.5", 40001, pid: 101, ptr: "0xs1", link: "0xc1")],
            clients: [Self.client("10.1.4.7", 51234, ptr: "0xc1", link: "0xs1")], pools: [])
        let joined = Self.attach([listing], [Self.session(101, "10.0.0.5", 40001)])
        #expect(joined[0]?.endpoint == "10.1.4.7:51234")
        #expect(joined[0]?.phrase == "client=10.1.4.7:51234 via pgbouncer 10.0.0.5:6432, client connected 05:02:35")
    }

    @Test func eachRuleLeavesTheClientUnnamed() {
        let good = Self.server("10.0.0.5", 40001, pid: 101, ptr: "0xs1", link: "0xc1")
        let client = Self.client("10.1.4.7", 51234, ptr: "0xc1", link: "0xs1")
        let session = Self.session(101, "10.0.0.5", 40001)
        func join(_ servers: [Server], _ clients: [Client], _ s: Session = session) -> PoolerClient? {
            Self.attach([PgBouncerListing(pgbouncer: "p", servers: servers, clients: clients, pools: [])], [s])[0]
        }
        #expect(join([good], [client]) != nil)
        // The pid the server announced is another backend's.
        #expect(join([Self.server("10.0.0.5", 40001, pid: 999, ptr: "0xs1", link: "0xc1")], [client]) == nil)
        // Another port.
        #expect(join([good], [client], Self.session(101, "10.0.0.5", 40002)) == nil)
        // The server is idle in the pool (no link): a session-level lock in transaction pooling.
        #expect(join([Self.server("10.0.0.5", 40001, pid: 101, ptr: "0xs1", link: nil)], [client]) == nil)
        // The client's pointer was reused: it now points at another server.
        #expect(join([good], [Self.client("10.1.4.7", 51234, ptr: "0xc1", link: "0xs9")]) == nil)
        // Two clients claim the pointer: no proof.
        #expect(join([good], [client, Self.client("10.9.9.9", 1, ptr: "0xc1", link: "0xs1")]) == nil)
        // Two server connections claim the address: no proof.
        #expect(join([good, Self.server("10.0.0.5", 40001, pid: 0, ptr: "0xs2", link: "0xc1")], [client]) == nil)
        // A prepared transaction has no client.
        var prepared = session
        prepared.gid = "tx1"
        #expect(join([good], [client], prepared) == nil)
        // Over a Unix socket, the pid is the key and must be announced.
        #expect(join([Self.server("unix", 0, pid: 101, ptr: "0xs1", link: "0xc1")], [client], Self.session(101, "local", nil)) != nil)
        #expect(join([Self.server("unix", 0, pid: 0, ptr: "0xs1", link: "0xc1")], [client], Self.session(101, "local", nil)) == nil)
        #expect(join([Self.server("unix", 0, pid: 102, ptr: "0xs1", link: "0xc1")], [client], Self.session(101, "local", nil)) == nil)
    }

    @Test func theMigrationsClientSocketsLeadToItsBackends() {
        let listing = PgBouncerListing(
            pgbouncer: "p",
            servers: [
                Self.server("127.0.0.1", 40001, ptr: "0xs1", link: "0xc1"), Self.server("127.0.0.1", 40002, ptr: "0xs2", link: "0xc9"),
            ],
            clients: [
                Self.client("127.0.0.1", 50001, ptr: "0xc1", link: "0xs1"), Self.client("127.0.0.1", 50002, ptr: "0xc2", link: "0xs2"),
            ], pools: [])
        let found = PoolerJoin.backendEndpoints(
            servingClientsAt: [.init(address: "127.0.0.1", port: 50001), .init(address: "127.0.0.1", port: 50002)], in: [listing])
        // 50002's server links back to another client: only 50001 leads to a backend.
        #expect(found == [.init(address: "127.0.0.1", port: 40001)])
    }

    @Test func tablesAreReadByColumnNameWhateverTheirOrder() {
        let servers = PgBouncerTable(
            columns: ["ptr", "local_port", "extra", "local_addr", "link", "remote_pid"],
            rows: [["0xs1", "40001", "x", "127.0.0.1", "0xc1", "77"], ["0xs2", "not-a-port", "x", "127.0.0.1", "", "0"], ["0xs3"]])
        let clients = PgBouncerTable(columns: ["addr", "port", "ptr", "link"], rows: [["127.0.0.2", "5000", "0xc1", "0xs1"]])
        let pools = PgBouncerTable(columns: ["database", "user", "cl_waiting"], rows: [["app", "u", "4"]])
        let listing = PgBouncerListing(pgbouncer: "p", servers: servers, clients: clients, pools: pools)
        #expect(listing.servers == [Self.server("127.0.0.1", 40001, pid: 77, ptr: "0xs1", link: "0xc1").with(database: "", user: "")])
        #expect(listing.clients.map(\.port) == [5000])
        #expect(listing.pools.map(\.clientsWaiting) == [4])
    }

    /// The oracle: for each session, every server any listing has at its address (or, over a
    /// Unix socket, with its pid); exactly one, with no other pid announced, linked to exactly
    /// one client of its listing that links back.
    static func oracle(_ listings: [PgBouncerListing], _ session: Session) -> PoolerClient? {
        guard session.gid == nil else { return nil }
        var candidates: [(Server, PgBouncerListing)] = []
        for listing in listings {
            for server in listing.servers {
                if session.clientAddr == "local" {
                    if server.localAddr == "unix" && server.remotePID > 0 && server.remotePID == Int(session.pid) {
                        candidates.append((server, listing))
                    }
                } else if server.localAddr != "unix", let port = session.clientPort, port > 0, server.localAddr == session.clientAddr,
                    server.localPort == port
                {
                    candidates.append((server, listing))
                }
            }
        }
        guard candidates.count == 1, let (server, listing) = candidates.first else { return nil }
        guard server.remotePID == 0 || server.remotePID == Int(session.pid) else { return nil }
        let clients = listing.clients.filter { $0.ptr == server.link }
        guard clients.count == 1, let client = clients.first, client.link == server.ptr else { return nil }
        return PoolerClient(
            pgbouncer: listing.pgbouncer, addr: client.addr, port: client.port, usename: client.user, database: client.database,
            applicationName: client.applicationName, connectTime: client.connectTime)
    }

    @Test func randomListingsJoinAsTheOracleSays() async {
        await propertyCheck(count: 1500, input: Gen.int(in: 0...5).array(of: 400)) { choices in
            var cursor = 0
            func next(_ n: Int) -> Int {
                defer { cursor += 1 }
                return choices[cursor % choices.count] % n
            }
            let addresses = ["127.0.0.1", "127.0.0.2", "unix"]
            let pointers = ["0x1", "0x2", "0x3", "0x4"]
            let listings = (0..<(1 + next(2))).map { index in
                PgBouncerListing(
                    pgbouncer: "p\(index)",
                    servers: (0..<next(5)).map { _ in
                        Self.server(
                            addresses[next(3)], 40000 + next(3), pid: [0, 100, 101, 102][next(4)], ptr: pointers[next(4)],
                            link: next(4) == 0 ? nil : pointers[next(4)])
                    },
                    clients: (0..<next(5)).map { _ in
                        Self.client("10.0.0.\(next(3))", 50000 + next(3), ptr: pointers[next(4)], link: next(4) == 0 ? nil : pointers[next(4)])
                    }, pools: [])
            }
            let sessions = (0..<4).map { index in
                let addr = ["127.0.0.1", "127.0.0.2", "local", ""][next(4)]
                var s = Self.session(Int32(100 + index), addr, addr == "local" ? nil : 40000 + next(3))
                if next(6) == 0 { s.gid = "g" }
                return s
            }
            let joined = Self.attach(listings, sessions)
            for (session, client) in zip(sessions, joined) {
                #expect(client == Self.oracle(listings, session))
            }
        }
    }
}

extension PgBouncerListing.Server {
    func with(database: String, user: String) -> Self {
        var copy = self
        copy.database = database
        copy.user = user
        return copy
    }
}
