/// What `check` reports: the server, every client session, and each blocking tree with the
/// locks involved. Encodes to the documented JSON (`check --format json`).
public struct BlockingReport: Sendable, Encodable {
    public struct Server: Sendable, Encodable {
        public var version: String
        public var versionNumber: Int
        /// Client sessions by state (hidden ones as `unknown`).
        public var sessionsByState: [String: Int]
        public var blockedSessions: Int

        enum CodingKeys: String, CodingKey {
            case version, versionNumber = "version_num", sessionsByState = "sessions_by_state"
            case blockedSessions = "blocked_sessions"
        }
    }

    /// One session of a tree. For a root, `lockMode`/`relation` name the lock it holds that others
    /// want; for a waiter, the lock it waits for, and `waitSeconds` how long.
    public struct Node: Sendable, Encodable {
        public var pid: Int32
        public var datname: String?
        public var state: String
        public var stateSeconds: Double?
        public var usename: String?
        public var applicationName: String?
        public var clientAddr: String?
        public var waitSeconds: Double?
        public var lockMode: String?
        public var relation: String?
        public var query: String?
        /// Sessions behind this one, directly or transitively (roots only).
        public var blockedCount: Int?
        /// True when this session already appears earlier in the tree (it waits behind several).
        public var repeated: Bool
        public var blocked: [Node]

        enum CodingKeys: String, CodingKey {
            case pid, datname, state, stateSeconds = "state_seconds", usename, applicationName = "application_name"
            case clientAddr = "client_addr", waitSeconds = "wait_seconds", lockMode = "lock_mode", relation, query
            case blockedCount = "blocked_count", repeated, blocked
        }
    }

    public struct SessionEntry: Sendable, Encodable {
        public var pid: Int32
        public var datname: String?
        public var usename: String?
        public var applicationName: String
        public var clientAddr: String
        public var state: String
        public var stateSeconds: Double?
        public var transactionSeconds: Double?
        public var waitingOnLock: Bool
        public var blockedBy: [Int32]
        public var blocking: Bool
        public var query: String?

        enum CodingKeys: String, CodingKey {
            case pid, datname, usename, applicationName = "application_name", clientAddr = "client_addr", state
            case stateSeconds = "state_seconds", transactionSeconds = "transaction_seconds"
            case waitingOnLock = "waiting_on_lock", blockedBy = "blocked_by", blocking, query
        }
    }

    public var server: Server
    public var sessions: [SessionEntry]
    public var blockingTrees: [Node]

    enum CodingKeys: String, CodingKey {
        case server, sessions, blockingTrees = "blocking_trees"
    }

    /// With `database`, only that database's sessions and the trees that touch it are reported.
    public init(snapshot: ActivitySnapshot, graph: BlockingGraph, database: String? = nil) {
        let inScope = { (s: Session) in database == nil || s.datname == database }
        let clients = snapshot.sessions.filter { $0.isClient && inScope($0) }
        var byState: [String: Int] = [:]
        for s in clients { byState[s.stateLabel, default: 0] += 1 }
        server = Server(
            version: snapshot.settings.versionString, versionNumber: snapshot.serverVersion, sessionsByState: byState,
            blockedSessions: graph.blocked.values.filter { $0.isClient && inScope($0) }.count)
        sessions = clients.sorted { $0.pid < $1.pid }.map { s in
            SessionEntry(
                pid: s.pid, datname: s.datname, usename: s.usename, applicationName: s.applicationName,
                clientAddr: s.clientAddr, state: s.stateLabel, stateSeconds: s.stateSeconds,
                transactionSeconds: s.transactionSeconds, waitingOnLock: s.waitingOnLock, blockedBy: s.blockedBy,
                blocking: graph.isBlocking(s.pid), query: s.query)
        }
        var byPID: [Int32: Session] = [:]
        for s in snapshot.sessions { byPID[s.pid] = s }
        let builder = TreeBuilder(graph: graph, sessions: byPID, locks: snapshot.lockDetails)
        blockingTrees = graph.roots.filter { root in
            database == nil || root.datname == database
                || graph.allWaiters(of: root.pid).contains { byPID[$0].map(inScope) ?? false }
        }.map { builder.tree(for: $0) }
    }

    /// Client sessions idle in transaction that block nobody (yet), oldest first.
    public var idleInTransactionNotBlocking: [SessionEntry] {
        sessions.filter { Session.isIdleInTransaction($0.state) && !$0.blocking }
            .sorted { ($0.stateSeconds ?? 0) > ($1.stateSeconds ?? 0) }
    }
}

/// Walks the blocking graph from a root, attaching the locks each node holds or wants.
private struct TreeBuilder {
    let graph: BlockingGraph
    let sessions: [Int32: Session]
    let locks: [LockDetail]

    func tree(for root: BlockingGraph.Root) -> BlockingReport.Node {
        var seen: Set<Int32> = []
        var node = build(root.pid, parent: nil, seen: &seen)
        node.blockedCount = root.blockedCount
        if root.isPreparedTransaction { node.state = root.state }
        node.datname = node.datname ?? root.datname
        return node
    }

    private func build(_ pid: Int32, parent: Int32?, seen: inout Set<Int32>) -> BlockingReport.Node {
        let session = sessions[pid]
        let repeated = !seen.insert(pid).inserted
        // A waiter shows the lock it waits for; the root shows what it holds that its waiters want.
        let relevant: [LockDetail]
        if parent == nil {
            let wanted = Set(graph.directWaiters(of: pid).flatMap { w in locks.filter { $0.pid == w && !$0.granted }.map(\.object) })
            relevant = locks.filter { $0.pid == pid && wanted.contains($0.object) }
        } else {
            relevant = locks.filter { $0.pid == pid && !$0.granted }
        }
        let children = repeated ? [] : graph.directWaiters(of: pid).map { build($0, parent: pid, seen: &seen) }
        return BlockingReport.Node(
            pid: pid, datname: session?.datname, state: pid == 0 ? "prepared transaction" : (session?.stateLabel ?? "unknown"),
            stateSeconds: session?.stateSeconds, usename: session?.usename, applicationName: session?.applicationName,
            clientAddr: session?.clientAddr, waitSeconds: parent == nil ? nil : session?.lockWaitSeconds,
            lockMode: relevant.isEmpty ? nil : Self.unique(relevant.map(\.mode)).joined(separator: ", "),
            relation: relevant.isEmpty ? nil : Self.unique(relevant.map(\.object)).joined(separator: ", "),
            query: session?.query, blockedCount: nil, repeated: repeated, blocked: children)
    }

    private static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
