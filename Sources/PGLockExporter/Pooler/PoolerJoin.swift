/// Joins backends to the application clients behind PgBouncer, and back.
///
/// A backend is matched to a pooler's server connection by address first: the backend's
/// `(client_addr, client_port)` is the server connection's `(local_addr, local_port)`, a pair the
/// kernel gives one socket at a time, so it holds across poolers on one host. Where the server
/// announced the backend's pid (`remote_pid`, 0 when unknown), it must be the backend's own:
/// through a second pooler the addresses cannot match anyway, and the pid is that pooler's. A
/// pooler on the database host that connects over a Unix socket has `local_addr` `unix`: then
/// the backend is `local` and the pid is the only key, and it must be there.
///
/// From the server, `link` names the client it serves now; that client's own `link` must name
/// the server back. Pointers are reused at once after a disconnect, and the lists are read a
/// moment apart: a pointer that points only one way is no proof, and no client is named.
///
/// A backend idle in transaction stays linked to its client in session and transaction pooling
/// alike, and so does any backend that holds a lock in a transaction: the join is exact while it
/// matters. A session-level advisory lock taken in transaction pooling is held by a server that
/// no client is linked to: no client is named.
public enum PoolerJoin {
    /// Sets `poolerClient` on every session some listing accounts for; others are left as they are.
    public static func attach(_ listings: [PgBouncerListing], to sessions: inout [Session]) {
        guard !listings.isEmpty else { return }
        let index = Index(listings)
        for position in sessions.indices {
            if let client = index.client(of: sessions[position]) { sessions[position].poolerClient = client }
        }
    }

    /// The backends' `(client_addr, client_port)` of the server connections that serve the
    /// clients at `clientEndpoints` (the migration child's sockets, connected to a pooler).
    public static func backendEndpoints(
        servingClientsAt clientEndpoints: Set<ProcessTreePorts.Endpoint>, in listings: [PgBouncerListing]
    ) -> Set<ProcessTreePorts.Endpoint> {
        var result = Set<ProcessTreePorts.Endpoint>()
        for listing in listings {
            let servers = Dictionary(listing.servers.map { ($0.ptr, $0) }, uniquingKeysWith: { first, _ in first })
            for client in listing.clients where clientEndpoints.contains(.init(address: client.addr, port: client.port)) {
                guard let link = client.link, let server = servers[link], server.link == client.ptr, server.localAddr != "unix" else { continue }
                result.insert(.init(address: server.localAddr, port: server.localPort))
            }
        }
        return result
    }

    private struct AddressKey: Hashable {
        var addr: String
        var port: Int
    }

    private struct Index {
        /// Server connection by its local end, with the listing it came from.
        var byAddress: [AddressKey: (PgBouncerListing.Server, Int)] = [:]
        /// Unix-socket server connections by the pid they announced.
        var unixByPID: [Int: (PgBouncerListing.Server, Int)] = [:]
        /// Per listing, clients by pointer.
        var clients: [[String: PgBouncerListing.Client]] = []
        var names: [String] = []
        /// Addresses or pids that two server connections claim: ambiguous, never joined.
        var ambiguousAddresses: Set<AddressKey> = []
        var ambiguousPIDs: Set<Int> = []

        init(_ listings: [PgBouncerListing]) {
            for (position, listing) in listings.enumerated() {
                names.append(listing.pgbouncer)
                var byPtr: [String: PgBouncerListing.Client] = [:]
                var repeated: Set<String> = []
                for client in listing.clients where byPtr.updateValue(client, forKey: client.ptr) != nil { repeated.insert(client.ptr) }
                for ptr in repeated { byPtr[ptr] = nil }
                clients.append(byPtr)
                for server in listing.servers {
                    if server.localAddr == "unix" {
                        guard server.remotePID > 0 else { continue }
                        if unixByPID.updateValue((server, position), forKey: server.remotePID) != nil { ambiguousPIDs.insert(server.remotePID) }
                    } else {
                        let key = AddressKey(addr: server.localAddr, port: server.localPort)
                        if byAddress.updateValue((server, position), forKey: key) != nil { ambiguousAddresses.insert(key) }
                    }
                }
            }
        }

        func client(of session: Session) -> PoolerClient? {
            guard session.gid == nil, let found = server(of: session) else { return nil }
            let (server, position) = found
            guard let link = server.link, let client = clients[position][link], client.link == server.ptr else { return nil }
            return PoolerClient(
                pgbouncer: names[position], addr: client.addr, port: client.port, usename: client.user, database: client.database,
                applicationName: client.applicationName, connectTime: client.connectTime)
        }

        private func server(of session: Session) -> (PgBouncerListing.Server, Int)? {
            if session.clientAddr == "local" {
                guard !ambiguousPIDs.contains(Int(session.pid)) else { return nil }
                return unixByPID[Int(session.pid)]
            }
            guard let port = session.clientPort, port > 0, !session.clientAddr.isEmpty else { return nil }
            let key = AddressKey(addr: session.clientAddr, port: port)
            guard !ambiguousAddresses.contains(key), let found = byAddress[key] else { return nil }
            guard found.0.remotePID == 0 || found.0.remotePID == Int(session.pid) else { return nil }
            return found
        }
    }
}
