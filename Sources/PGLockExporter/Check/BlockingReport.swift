/// What `check` reports: the server, every client session, and each blocking tree with the
/// locks involved. Encodes to the documented JSON (`check --format json`).
public struct BlockingReport: Sendable, Encodable {
    public struct Server: Sendable, Encodable {
        public var version: String
        public var versionNumber: Int
        /// Client sessions by state (hidden ones as `unknown`).
        public var sessionsByState: [String: Int]
        /// Blocked sessions of any backend type, as `pg_blocked_sessions` counts them.
        public var blockedSessions: Int

        enum CodingKeys: String, CodingKey {
            case version, versionNumber = "version_num", sessionsByState = "sessions_by_state"
            case blockedSessions = "blocked_sessions"
        }
    }

    /// One session of a tree. For a root, `lockMode`/`relation` name the lock it holds that others
    /// want; for a waiter, the lock it waits for, and `waitSeconds` how long. `relation` is the
    /// object in words (a table, a row of it, a transaction, an advisory key), `lock` the same
    /// object as `pg_locks` identifies it.
    public struct Node: Sendable, Encodable {
        /// As PostgreSQL shows it: 0 for a prepared transaction (then `gid` names it).
        public var pid: Int32
        public var gid: String?
        public var datname: String?
        public var state: String
        public var stateSeconds: Double?
        public var usename: String?
        public var applicationName: String?
        public var clientAddr: String?
        public var waitSeconds: Double?
        public var lockMode: String?
        public var relation: String?
        public var lock: LockTarget?
        /// For a wait on a transaction id: the row the waiter wants to change.
        public var row: LockTarget?
        public var query: String?
        /// Sessions behind this one, directly or transitively (roots only).
        public var blockedCount: Int?
        /// Edges to the farthest waiter, as `pg_blocking_chain_depth_max` counts them (roots only).
        public var chainDepth: Int?
        /// What a person may run where the tool will not (a prepared transaction), roots only.
        public var hint: String?
        /// True when this session already appears earlier in the tree (it waits behind several).
        public var repeated: Bool
        public var blocked: [Node]
        /// True when sessions wait behind this one but are not drawn: the tree is cut at
        /// `BlockingReport.maxTreeDepth` levels (the root's `blockedCount` still counts them).
        public var truncated: Bool? = nil
        /// The application client behind a configured PgBouncer (`--pgbouncer.dsn`).
        public var pgbouncerClient: PoolerClient? = nil

        enum CodingKeys: String, CodingKey {
            case pid, gid, datname, state, stateSeconds = "state_seconds", usename, applicationName = "application_name"
            case clientAddr = "client_addr", pgbouncerClient = "pgbouncer_client", waitSeconds = "wait_seconds", lockMode = "lock_mode"
            case relation, lock, row, query
            case blockedCount = "blocked_count", chainDepth = "chain_depth", hint, repeated, blocked, truncated
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
        public var pgbouncerClient: PoolerClient? = nil

        enum CodingKeys: String, CodingKey {
            case pid, datname, usename, applicationName = "application_name", clientAddr = "client_addr"
            case pgbouncerClient = "pgbouncer_client", state
            case stateSeconds = "state_seconds", transactionSeconds = "transaction_seconds"
            case waitingOnLock = "waiting_on_lock", blockedBy = "blocked_by", blocking, query
        }
    }

    public var server: Server
    public var sessions: [SessionEntry]
    public var blockingTrees: [Node]
    /// Sessions waiting on one another (`BlockingGraph.cycles`) with a member in scope: a
    /// deadlock PostgreSQL has not broken yet. Those behind a root are in its tree too; one that
    /// nobody outside holds up is in no tree, only here.
    public var cycles: [[Int32]]

    /// Levels of a tree that are drawn. The tree is a nested value that building, encoding and
    /// drawing each walk by recursion, and a chain of thousands of sessions would overflow the
    /// stack; nobody reads a tree deeper than this, and the root's counts cover what is cut.
    public static let maxTreeDepth = 64

    enum CodingKeys: String, CodingKey {
        case server, sessions, blockingTrees = "blocking_trees", cycles
    }

    /// With `database`, only that database's sessions and the trees that touch it are reported.
    public init(snapshot: ActivitySnapshot, graph: BlockingGraph, database: String? = nil) {
        let inScope = { (s: Session) in database == nil || s.datname == database }
        let clients = snapshot.sessions.filter { $0.isClient && inScope($0) }
        var byState: [String: Int] = [:]
        for s in clients { byState[s.stateLabel, default: 0] += 1 }
        server = Server(
            version: snapshot.settings.versionString, versionNumber: snapshot.serverVersion, sessionsByState: byState,
            blockedSessions: graph.blocked.sessions.filter(inScope).count)
        var byPID: [Int32: Session] = [:]
        for s in snapshot.sessions { byPID[s.pid] = s }
        sessions = clients.sorted { $0.pid < $1.pid }.map { s in
            SessionEntry(
                pid: s.pid, datname: s.datname, usename: s.usename, applicationName: s.applicationName,
                clientAddr: s.clientAddr, state: s.stateLabel, stateSeconds: s.stateSeconds,
                transactionSeconds: s.transactionSeconds, waitingOnLock: s.waitingOnLock, blockedBy: s.blockedBy.map { byPID[$0]?.displayPID ?? $0 },
                blocking: graph.isBlocking(s.pid), query: s.query, pgbouncerClient: s.poolerClient)
        }
        let builder = TreeBuilder(graph: graph, sessions: byPID, locks: snapshot.lockDetails)
        // The roots some session of the database waits behind: one walk up the graph for all.
        let reachingScope = database == nil ? [] : Set(graph.roots(blocking: graph.blocked.sessions.filter(inScope).map(\.pid)).map(\.pid))
        blockingTrees = graph.roots.filter { root in
            database == nil || root.datname == database || reachingScope.contains(root.pid)
        }.map { builder.tree(for: $0) }
        cycles = graph.cycles.filter { cycle in cycle.contains { byPID[$0].map(inScope) ?? false } }
    }

    /// How `check` and `/tree` name a session: `db=app user=u app=worker client=10.0.0.5`; behind
    /// a configured pooler, the application's client
    /// (`client=10.1.4.7:51234 via pgbouncer 10.0.0.5:6432, client connected 15:02:11`). Raw text:
    /// each caller makes it safe for where it goes (a terminal, a page).
    public static func identity(datname: String?, usename: String?, application: String?, client: String?, pooler: PoolerClient?) -> String {
        var parts: [String] = []
        if let datname { parts.append("db=\(datname)") }
        if let usename { parts.append("user=\(usename)") }
        if let application, !application.isEmpty { parts.append("app=\(application)") }
        if let pooler {
            parts.append(pooler.phrase)
        } else if let client, !client.isEmpty {
            parts.append("client=\(client)")
        }
        return parts.joined(separator: " ")
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
    /// The lock details by pid (a prepared transaction's under 0), so that each node reads its
    /// own locks, not all of them.
    let locks: [Int32: [LockDetail]]

    init(graph: BlockingGraph, sessions: [Int32: Session], locks: [LockDetail]) {
        self.graph = graph
        self.sessions = sessions
        self.locks = Dictionary(grouping: locks, by: \.pid)
    }

    func tree(for root: BlockingGraph.Root) -> BlockingReport.Node {
        var seen: Set<Int32> = []
        var node = build(root.pid, parent: nil, level: 0, seen: &seen)
        node.blockedCount = root.blockedCount
        node.chainDepth = root.depth
        node.state = root.state
        node.datname = node.datname ?? root.datname
        if let gid = root.session?.gid {
            let literal = SQLLiteral.quote(gid)
            node.hint = "ROLLBACK PREPARED \(literal) throws its work away; COMMIT PREPARED \(literal) keeps it"
        }
        return node
    }

    private func build(_ pid: Int32, parent: Int32?, level: Int, seen: inout Set<Int32>) -> BlockingReport.Node {
        let session = sessions[pid]
        let repeated = !seen.insert(pid).inserted
        // A waiter shows the lock it waits for; the root shows what it holds that its waiters want.
        let relevant: [LockDetail]
        var row: LockDetail?
        if parent == nil {
            let wanted = Set(graph.directWaiters(of: pid).flatMap { w in (locks[w] ?? []).filter { !$0.granted }.map(\.target) })
            // A prepared transaction's locks have no pid (read as 0).
            let holder = session?.isPreparedTransaction == true ? 0 : pid
            relevant = (locks[holder] ?? []).filter { $0.granted && wanted.contains($0.target) }
        } else {
            relevant = (locks[pid] ?? []).filter { !$0.granted }
            // Waiting on a transaction id means waiting to change a row that transaction
            // changed; the row lock the waiter holds names it.
            if relevant.contains(where: { $0.target.locktype == "transactionid" }) {
                row = (locks[pid] ?? []).first { $0.granted && $0.target.locktype == "tuple" }
            }
        }
        let cut = !repeated && level >= BlockingReport.maxTreeDepth && graph.isBlocking(pid)
        let children = repeated || cut ? [] : graph.directWaiters(of: pid).map { build($0, parent: pid, level: level + 1, seen: &seen) }
        var objects = Self.unique(relevant.map(\.target.description))
        if let row { objects = objects.map { $0 + ", " + row.target.description } }
        return BlockingReport.Node(
            pid: session?.displayPID ?? pid, gid: session?.gid, datname: session?.datname,
            state: session?.stateLabel ?? (pid == 0 ? Session.preparedTransaction : "unknown"),
            stateSeconds: session?.stateSeconds, usename: session?.usename, applicationName: session?.applicationName,
            clientAddr: session?.clientAddr, waitSeconds: parent == nil ? nil : session?.lockWaitSeconds,
            lockMode: relevant.isEmpty ? nil : Self.unique(relevant.map(\.mode)).joined(separator: ", "),
            relation: objects.isEmpty ? nil : objects.joined(separator: "; "),
            lock: relevant.first?.target, row: row?.target,
            query: session?.query, blockedCount: nil, chainDepth: nil, hint: nil, repeated: repeated, blocked: children,
            truncated: cut ? true : nil, pgbouncerClient: session?.poolerClient)
    }

    private static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
