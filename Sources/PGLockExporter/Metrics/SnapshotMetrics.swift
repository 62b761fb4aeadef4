/// Options that bound what the session metrics may emit.
public struct MetricOptions: Sendable {
    /// Root blockers that get their own `pg_blocking_root_*` series (largest first).
    public var topRoots: Int
    /// `usename`/`application_name` pairs per database; the rest fold into `other`.
    public var maxUserApplicationPairs: Int
    /// Relations per database that get their own `pg_lock_waiting_sessions` series.
    public var topRelations: Int

    public init(topRoots: Int = 5, maxUserApplicationPairs: Int = 50, topRelations: Int = 10) {
        self.topRoots = topRoots
        self.maxUserApplicationPairs = maxUserApplicationPairs
        self.topRelations = topRelations
    }
}

/// Turns a snapshot and its blocking graph into the metric contract of docs/metrics.md.
///
/// Series that alerts depend on (`pg_blocked_sessions`, `pg_lock_wait_seconds_max`,
/// `pg_blocking_chain_depth_max`, `pg_blocking_root_idle_in_transaction_*`) are written for every
/// connectable database, 0 when quiet, so they never vanish between scrapes. Every label set is
/// bounded: pairs of user and application are capped per database, root blockers to the top K.
public struct SnapshotMetrics {
    public let snapshot: ActivitySnapshot
    public let graph: BlockingGraph
    public let options: MetricOptions

    /// States every session group reports, 0 when none is in them, so `pg_sessions` series stay.
    static let baselineStates = ["active", "idle", "idle in transaction", "idle in transaction (aborted)"]
    static let other = "other"

    public init(snapshot: ActivitySnapshot, graph: BlockingGraph, options: MetricOptions) {
        self.snapshot = snapshot
        self.graph = graph
        self.options = options
    }

    private struct GroupKey: Hashable, Comparable {
        var datname: String
        var usename: String
        var application: String
        static func < (a: GroupKey, b: GroupKey) -> Bool {
            (a.datname, a.usename, a.application) < (b.datname, b.usename, b.application)
        }
    }

    private struct Pair: Hashable, Comparable {
        // (datname, state) for transaction ages and root blockers
        var first: String
        var second: String
        static func < (a: Pair, b: Pair) -> Bool { (a.first, a.second) < (b.first, b.second) }
    }

    public func write(into w: inout ExpositionWriter) {
        // One pass over the sessions; every per-session metric is then read from the groups,
        // which are few (database, user, application), not from the sessions again.
        let groups = clientGroups()
        let databases = databaseNames(groups)
        writeSessionGroups(groups, into: &w)
        writeTransactionAges(groups, into: &w)
        writeBlocking(databases, into: &w)
        writeWaitingRelations(into: &w)
        writeLocks(into: &w)
        let guards = GuardSettings(settings: snapshot.settings, roleSettings: snapshot.roleSettings)
        writeServer(guards, into: &w)
        writeRoleSettings(groups, guards, into: &w)
    }

    /// Client sessions by (datname, usename, application). A missing database or user is ""
    /// (no database or role can have an empty name).
    private func clientGroups() -> [GroupKey: GroupStats] {
        var groups: [GroupKey: GroupStats] = [:]
        for s in snapshot.sessions where s.isClient {
            groups[GroupKey(datname: s.datname ?? "", usename: s.usename ?? "", application: s.applicationName), default: GroupStats()].add(s)
        }
        return groups
    }

    /// Connectable databases plus any other database a client session is in, sorted.
    private func databaseNames(_ groups: [GroupKey: GroupStats]) -> [String] {
        var names = Set(snapshot.databases.map(\.datname))
        for key in groups.keys { names.insert(key.datname) }
        return names.sorted()
    }

    /// Per group: sessions by state, and the oldest idle-in-transaction age.
    private struct GroupStats {
        /// Counts for `baselineStates`, in that order; other states in `others`.
        var baseline = [0, 0, 0, 0]
        var others: [String: Int] = [:]
        var total = 0
        var idleMax = 0.0
        /// The oldest open transaction (now - xact_start) by state label.
        var transactionAgeMax: [String: Double] = [:]

        mutating func add(_ s: Session) {
            total += 1
            switch s.state {
            case "active": baseline[0] += 1
            case "idle": baseline[1] += 1
            case "idle in transaction": baseline[2] += 1
            case "idle in transaction (aborted)": baseline[3] += 1
            default: others[s.stateLabel, default: 0] += 1
            }
            if s.isIdleInTransaction { idleMax = max(idleMax, s.stateSeconds ?? 0) }
            if let age = s.transactionSeconds {
                transactionAgeMax[s.stateLabel] = max(transactionAgeMax[s.stateLabel] ?? 0, max(0, age))
            }
        }

        mutating func merge(_ other: GroupStats) {
            for i in baseline.indices { baseline[i] += other.baseline[i] }
            others.merge(other.others, uniquingKeysWith: +)
            total += other.total
            idleMax = max(idleMax, other.idleMax)
            transactionAgeMax.merge(other.transactionAgeMax, uniquingKeysWith: max)
        }
    }

    /// Folds each database's smallest user/application pairs beyond the cap into `other`.
    private func capped(_ groups: [GroupKey: GroupStats]) -> [(GroupKey, GroupStats)] {
        var byDatabase: [String: [(GroupKey, GroupStats)]] = [:]
        for (key, stats) in groups { byDatabase[key.datname, default: []].append((key, stats)) }
        var result: [(GroupKey, GroupStats)] = []
        for (datname, entries) in byDatabase {
            guard entries.count > options.maxUserApplicationPairs else {
                result += entries
                continue
            }
            let ranked = entries.sorted { $0.1.total != $1.1.total ? $0.1.total > $1.1.total : $0.0 < $1.0 }
            let otherKey = GroupKey(datname: datname, usename: Self.other, application: Self.other)
            var kept = Array(ranked.prefix(max(0, options.maxUserApplicationPairs)))
            var folded = GroupStats()
            for (_, stats) in ranked.dropFirst(max(0, options.maxUserApplicationPairs)) { folded.merge(stats) }
            // A real user "other" running application "other" shares the folded series, never
            // duplicates it.
            if let index = kept.firstIndex(where: { $0.0 == otherKey }) {
                folded.merge(kept.remove(at: index).1)
            }
            result += kept
            result.append((otherKey, folded))
        }
        return result.sorted { $0.0 < $1.0 }
    }

    private func writeSessionGroups(_ groups: [GroupKey: GroupStats], into w: inout ExpositionWriter) {
        let groups = capped(groups)
        w.family("pg_sessions", .gauge, help: "Client sessions by database, user, application and state.")
        for (key, stats) in groups {
            var states = Self.baselineStates.enumerated().map { ($1, stats.baseline[$0]) } + stats.others.map { ($0.key, $0.value) }
            states.sort { $0.0 < $1.0 }
            for (state, count) in states {
                w.sample(
                    "pg_sessions",
                    ["datname": key.datname, "usename": key.usename, "application_name": key.application, "state": state],
                    count)
            }
        }
        w.family(
            "pg_idle_in_transaction_seconds", .gauge,
            help: "Longest time a session of the group has sat idle in transaction (now - state_change); 0 if none.")
        for (key, stats) in groups {
            w.sample(
                "pg_idle_in_transaction_seconds",
                ["datname": key.datname, "usename": key.usename, "application_name": key.application], max(0, stats.idleMax))
        }
    }

    private func writeTransactionAges(_ groups: [GroupKey: GroupStats], into w: inout ExpositionWriter) {
        var ages: [Pair: Double] = [:]
        for (key, stats) in groups {
            for (state, age) in stats.transactionAgeMax {
                let pair = Pair(first: key.datname, second: state)
                ages[pair] = max(ages[pair] ?? 0, age)
            }
        }
        w.family(
            "pg_transaction_age_seconds_max", .gauge,
            help: "Age of the oldest open transaction (now - xact_start) by database and session state.")
        for key in ages.keys.sorted() {
            w.sample("pg_transaction_age_seconds_max", ["datname": key.first, "state": key.second], ages[key]!)
        }
    }

    private func writeBlocking(_ databases: [String], into w: inout ExpositionWriter) {
        var blocked: [String: Int] = [:]
        var waitMax: [String: Double] = [:]
        for session in graph.blocked.sessions {
            let datname = session.datname ?? ""
            blocked[datname, default: 0] += 1
            waitMax[datname] = max(waitMax[datname] ?? 0, max(0, session.lockWaitSeconds ?? 0))
        }
        var depthMax: [String: Int] = [:]
        var rootsByState: [Pair: Int] = [:]
        // Every root idle in transaction, whatever its rank: the remediation alert's signal.
        var idleRoots: [String: Int] = [:]
        var idleRootMax: [String: Double] = [:]
        for root in graph.roots {
            depthMax[root.datname] = max(depthMax[root.datname] ?? 0, root.depth)
            rootsByState[Pair(first: root.datname, second: root.state), default: 0] += 1
            if let session = root.session, session.isIdleInTransaction {
                idleRoots[root.datname, default: 0] += 1
                idleRootMax[root.datname] = max(idleRootMax[root.datname] ?? 0, max(0, session.stateSeconds ?? 0))
            }
        }
        let allDatabases = Set(databases).union(blocked.keys).union(depthMax.keys).sorted()

        w.family(
            "pg_blocked_sessions", .gauge,
            help: "Sessions (any backend, a parallel worker counted as its leader) waiting on a heavyweight lock held or queued by another.")
        for d in allDatabases { w.sample("pg_blocked_sessions", ["datname": d], blocked[d] ?? 0) }
        w.family(
            "pg_lock_wait_seconds_max", .gauge,
            help: "Longest current lock wait of a blocked session (now - pg_locks.waitstart).")
        for d in allDatabases { w.sample("pg_lock_wait_seconds_max", ["datname": d], waitMax[d] ?? 0) }
        w.family("pg_blocking_root_sessions", .gauge, help: "Root blockers (blocking others, waiting on nobody) by state.")
        for key in rootsByState.keys.sorted() {
            w.sample("pg_blocking_root_sessions", ["datname": key.first, "state": key.second], rootsByState[key]!)
        }
        w.family("pg_blocking_chain_depth_max", .gauge, help: "Edges from a root blocker to its farthest waiter, deepest chain.")
        for d in allDatabases { w.sample("pg_blocking_chain_depth_max", ["datname": d], depthMax[d] ?? 0) }
        w.family(
            "pg_blocking_root_idle_in_transaction_seconds_max", .gauge,
            help: "Longest idle-in-transaction age among all root blockers, whatever their rank; 0 if none.")
        for d in allDatabases { w.sample("pg_blocking_root_idle_in_transaction_seconds_max", ["datname": d], idleRootMax[d] ?? 0) }
        w.family(
            "pg_blocking_root_idle_in_transaction_sessions", .gauge, help: "Root blockers that are idle in transaction, whatever their rank.")
        for d in allDatabases { w.sample("pg_blocking_root_idle_in_transaction_sessions", ["datname": d], idleRoots[d] ?? 0) }

        let top = graph.roots.prefix(max(0, options.topRoots))
        w.family(
            "pg_blocking_root_blocked_sessions", .gauge,
            help: "Sessions waiting behind a root blocker, directly or transitively (top root blockers only).")
        for root in top { w.sample("pg_blocking_root_blocked_sessions", rootLabels(root), root.blockedCount) }
        w.family("pg_blocking_root_state_seconds", .gauge, help: "How long a root blocker has been in its current state (top root blockers only).")
        for root in top {
            w.sample("pg_blocking_root_state_seconds", rootLabels(root), max(0, root.session?.stateSeconds ?? 0))
        }
    }

    /// `gid` names a prepared transaction (pid 0), empty for every other root; `pgbouncer_client`
    /// the application client behind a configured PgBouncer (`ADDR:PORT`), empty when none is
    /// known. Bounded, because the series are for the top roots only.
    private func rootLabels(_ root: BlockingGraph.Root) -> KeyValuePairs<String, String> {
        [
            "datname": root.datname, "pid": String(root.displayPID), "usename": root.session?.usename ?? "",
            "application_name": root.session?.applicationName ?? "", "client_addr": root.session?.clientAddr ?? "",
            "state": root.state, "gid": root.session?.gid ?? "",
            "pgbouncer_client": root.session?.poolerClient?.endpoint ?? "",
        ]
    }

    /// Which table sessions queue on: waiters by the relation they wait for, the top K
    /// relations per database by waiters, the rest as `relation="other"`.
    private func writeWaitingRelations(into w: inout ExpositionWriter) {
        var byRelation: [Pair: Int] = [:]
        for session in graph.blocked.sessions {
            guard let relation = session.waitRelation else { continue }
            byRelation[Pair(first: session.datname ?? "", second: relation), default: 0] += 1
        }
        var kept: [Pair: Int] = [:]
        for datname in Set(byRelation.keys.map(\.first)) {
            let ranked = byRelation.filter { $0.key.first == datname }.sorted {
                $0.value != $1.value ? $0.value > $1.value : $0.key.second < $1.key.second
            }
            for (index, entry) in ranked.enumerated() {
                let key = index < options.topRelations ? entry.key : Pair(first: datname, second: Self.other)
                kept[key, default: 0] += entry.value
            }
        }
        w.family(
            "pg_lock_waiting_sessions", .gauge,
            help: "Blocked sessions by the relation they queue on (top relations per database; the rest as relation=\"other\").")
        for key in kept.keys.sorted() {
            w.sample("pg_lock_waiting_sessions", ["datname": key.first, "relation": key.second], kept[key]!)
        }
    }

    private func writeLocks(into w: inout ExpositionWriter) {
        let locks = snapshot.locks.sorted {
            ($0.datname, $0.mode, $0.granted ? 1 : 0) < ($1.datname, $1.mode, $1.granted ? 1 : 0)
        }
        w.family("pg_locks", .gauge, help: "Heavyweight locks by database, mode and whether granted (datname is empty for transaction-id locks).")
        for lock in locks {
            w.sample("pg_locks", ["datname": lock.datname, "mode": lock.mode, "granted": lock.granted ? "true" : "false"], lock.count)
        }
    }

    private func writeServer(_ guards: GuardSettings, into w: inout ExpositionWriter) {
        w.family("pg_max_connections", .gauge, help: "The server's max_connections.")
        w.sample("pg_max_connections", snapshot.settings.maxConnections)
        w.family(
            "pg_setting_seconds", .gauge,
            help: "Guard settings in seconds as a session gets them when no role or database setting applies; 0 means disabled.")
        for name in guards.names {
            w.sample("pg_setting_seconds", ["name": name], guards.serverWide[name] ?? 0)
        }
        let dbs = snapshot.databases
        writeCounter(
            "pg_database_idle_in_transaction_seconds_total",
            "Time sessions spent idle in transaction, from pg_stat_database (PostgreSQL 14+).", dbs, \.idleInTransactionSeconds,
            into: &w)
        writeCounter(
            "pg_database_sessions_killed_total", "Sessions terminated by an operator or a timeout (PostgreSQL 14+).", dbs,
            \.sessionsKilled, into: &w)
        writeCounter(
            "pg_database_sessions_abandoned_total", "Sessions ended because the client disconnected (PostgreSQL 14+).", dbs,
            \.sessionsAbandoned, into: &w)
        writeCounter("pg_database_deadlocks_total", "Deadlocks detected, from pg_stat_database.", dbs, \.deadlocks, into: &w)
        w.family("pg_server_info", .gauge, help: "The PostgreSQL server version; always 1.")
        w.sample("pg_server_info", ["version": snapshot.settings.versionString], 1)
    }

    private func writeCounter(
        _ name: String, _ help: String, _ databases: [DatabaseStats], _ value: KeyPath<DatabaseStats, Double?>,
        into w: inout ExpositionWriter
    ) {
        guard databases.contains(where: { $0[keyPath: value] != nil }) else { return }
        w.family(name, .counter, help: help)
        for db in databases {
            if let v = db[keyPath: value] { w.sample(name, ["datname": db.datname], v) }
        }
    }

    /// Per (database, role) with client sessions: each guard as those sessions get it at login.
    /// Per database the roles with the most sessions up to the user/application cap; the rest
    /// fold into `other`, which gets the weakest guard among them (`GuardSettings.weakest`: 0 if
    /// any has none, else the longest timeout), so the cap never hides an unguarded or lax role.
    private func writeRoleSettings(_ groups: [GroupKey: GroupStats], _ guards: GuardSettings, into w: inout ExpositionWriter) {
        var sessionsByRole: [String: [String: Int]] = [:]
        for (key, stats) in groups where !key.datname.isEmpty && !key.usename.isEmpty {
            sessionsByRole[key.datname, default: [:]][key.usename, default: 0] += stats.total
        }
        w.family(
            "pg_role_setting_seconds", .gauge,
            help: "Guard settings in seconds as the sessions of a role in a database get them at login; 0 means disabled.")
        for datname in sessionsByRole.keys.sorted() {
            let ranked = sessionsByRole[datname]!.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            let cap = max(0, options.maxUserApplicationPairs)
            var values: [String: [String: Double]] = [:]
            for (index, role) in ranked.enumerated() {
                let own = guards.forSessions(datname: datname, usename: role.key)
                let label = index < cap ? role.key : Self.other
                // A real role "other" shares the folded series, never duplicates it.
                values[label] = values[label].map { $0.merging(own, uniquingKeysWith: GuardSettings.weakest) } ?? own
            }
            for usename in values.keys.sorted() {
                for name in guards.names {
                    w.sample("pg_role_setting_seconds", ["datname": datname, "usename": usename, "name": name], values[usename]![name] ?? 0)
                }
            }
        }
    }
}
