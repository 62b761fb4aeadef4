import PGLockExporter

/// What PgBouncer's admin console answers (`SHOW SERVERS`, `SHOW CLIENTS`, `SHOW POOLS`), read by
/// column name, and the join of backends to the clients behind the pooler. The input is three
/// tables separated by `\n--\n`: a header line of `|`-separated column names, then rows (`\N`
/// is NULL). Sessions are made at every server's address (and pid), so the join is exercised.
enum PgBouncerListingTarget {
    static let target = FuzzTarget(name: "pgbouncer-listing") { bytes in
        let sections = bytes.text.components(separatedBy: "\n--\n")
        func table(_ index: Int) -> PgBouncerTable {
            guard index < sections.count else { return PgBouncerTable(columns: [], rows: []) }
            let lines = sections[index].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard let header = lines.first else { return PgBouncerTable(columns: [], rows: []) }
            let rows = lines.dropFirst().map { line in
                line.split(separator: "|", omittingEmptySubsequences: false).map { $0 == "\\N" ? nil : String($0) }
            }
            return PgBouncerTable(columns: header.split(separator: "|", omittingEmptySubsequences: false).map(String.init), rows: Array(rows))
        }
        let listing = PgBouncerListing(pgbouncer: "p:6432", servers: table(0), clients: table(1), pools: table(2))
        var sessions = listing.servers.map { server in
            Session(
                pid: Int32(truncatingIfNeeded: server.remotePID), datname: "app", usename: "u", applicationName: "",
                clientAddr: server.localAddr == "unix" ? "local" : server.localAddr, backendType: "client backend", state: "active",
                stateSeconds: 0, transactionSeconds: 0, waitingOnLock: false, blockedBy: [], lockWaitSeconds: nil, backendStart: nil,
                stateChange: nil, query: nil, clientPort: server.localPort)
        }
        PoolerJoin.attach([listing], to: &sessions)
        for session in sessions {
            guard let client = session.poolerClient else { continue }
            // Named only through a server at the session's address whose client links back.
            let servers = listing.servers.filter {
                session.clientAddr == "local" ? $0.localAddr == "unix" && $0.remotePID == Int(session.pid)
                    : $0.localAddr == session.clientAddr && $0.localPort == session.clientPort
            }
            FuzzCheck.require(servers.count == 1, "joined through \(servers.count) servers")
            FuzzCheck.require(
                listing.clients.contains { $0.ptr == servers[0].link && $0.link == servers[0].ptr && $0.addr == client.addr && $0.port == client.port },
                "joined to a client that does not link back")
            FuzzCheck.oneLine(TerminalText.safe(client.phrase), "client phrase")
        }
        let endpoints = Set(listing.clients.map { ProcessTreePorts.Endpoint(address: $0.addr, port: $0.port) })
        for found in PoolerJoin.backendEndpoints(servingClientsAt: endpoints, in: [listing]) {
            FuzzCheck.require(
                listing.servers.contains { $0.localAddr == found.address && $0.localPort == found.port }, "an endpoint no server has")
        }
        FuzzCheck.require(listing.pools.allSatisfy { $0.clientsWaiting >= 0 }, "a negative cl_waiting")
    }
}
