import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// Issue 19, finding 3: a deadlock that the server has not broken yet (it waits
    /// `deadlock_timeout` first) inside a queue on a hot table, made for real.
    @Suite struct BlockingCycleIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        /// The shape, with `waiters` sessions queued on `hot`:
        /// - `root` holds `t1` (ACCESS SHARE) and sits idle in transaction;
        /// - `b` holds `t1` too; `a` holds `hot` (ACCESS SHARE) and queues for `t1` (ACCESS
        ///   EXCLUSIVE) behind `root` and `b`;
        /// - `w1…wN` queue for `hot` (ACCESS EXCLUSIVE) behind `a` and every earlier `w`;
        /// - `b` queues for `hot` last, behind `a` and every `w`: `a` waits on `b`, `b` on `a`,
        ///   a deadlock the server keeps for `deadlock_timeout` (10 minutes here).
        /// Every waiter is in one cycle (a → w → b → a) below the one root.
        struct Shape {
            let database: String
            let root: Int32
            let a: Int32
            let b: Int32
            let waiters: [Int32]
            let sessions: [PsqlSession]
            func end() { for s in sessions { s.kill() } }
        }

        func queueWithPendingDeadlock(waiters count: Int) throws -> Shape {
            let database = try cluster.createDatabase("cycle")
            let admin = try cluster.connect(database: database)
            try admin.execute("CREATE TABLE t1 (id int)") { _ in }
            try admin.execute("CREATE TABLE hot (id int)") { _ in }
            let dsn = cluster.dsn(database: database)
            var sessions: [PsqlSession] = []
            func session(_ name: String) throws -> PsqlSession {
                let s = try PsqlSession(dsn: dsn, applicationName: name)
                sessions.append(s)
                s.send("SET deadlock_timeout = '10min'; SET lock_timeout = 0;")
                return s
            }
            func waiting(_ application: String, _ expected: Int) throws -> [Int32] {
                var found: [Int32] = []
                try eventually("\(expected) \(application) session(s) waiting on a lock", timeout: 30) {
                    found = try admin.execute(
                        """
                        SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 AND datname = current_database()
                          AND wait_event_type = 'Lock' ORDER BY pid
                        """, [application]
                    ) { r in (0..<r.rowCount).map { Int32(r.int($0, 0)!) } }
                    return found.count == expected
                }
                return found
            }
            func idleInTransaction(_ application: String) throws {
                try eventually("\(application) idle in transaction", timeout: 30) {
                    try admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'", [application]
                    ) { $0.int(0, 0) } == 1
                }
            }
            do {
                let root = try session("root")
                root.send("BEGIN; LOCK t1 IN ACCESS SHARE MODE;")
                try idleInTransaction("root")
                let b = try session("b")
                b.send("BEGIN; LOCK t1 IN ACCESS SHARE MODE;")
                try idleInTransaction("b")
                let a = try session("a")
                a.send("BEGIN; LOCK hot IN ACCESS SHARE MODE; LOCK t1 IN ACCESS EXCLUSIVE MODE;")
                let aPID = try waiting("a", 1)[0]
                for index in 1...count {
                    try session("w\(index)").send("BEGIN; LOCK hot IN ACCESS EXCLUSIVE MODE;")
                }
                let waiterPIDs = try waiting("w%", count)
                b.send("LOCK hot IN ACCESS EXCLUSIVE MODE;")
                let bPID = try waiting("b", 1)[0]
                let rootPID = try admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'root'") { Int32($0.int(0, 0)!) }
                return Shape(database: database, root: rootPID, a: aPID, b: bPID, waiters: waiterPIDs, sessions: sessions)
            } catch {
                for s in sessions { s.kill() }
                throw error
            }
        }

        /// Failed before the fix: `check` ran past its 60 s limit at 100% CPU (the depth search
        /// walked every path through the queue: 2^30 of them). Its structure is asserted here,
        /// its cost counted in steps (linear: a bound on nodes + edges), never timed.
        @Test func checkOnAQueueWithAPendingDeadlockAnswersWithTheWholeQueue() throws {
            let shape = try queueWithPendingDeadlock(waiters: 30)
            defer { shape.end() }
            let dsn = cluster.dsn(database: shape.database)

            let started = Date()
            let run = try runCLI(["check", "--dsn", dsn, "--format", "json"])
            let elapsed = Date().timeIntervalSince(started)
            print("check on a 30-waiter queue with a pending deadlock: \(String(format: "%.3f", elapsed)) s")
            #expect(run.status == 0, "\(run.output)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
            let trees = json["blocking_trees"] as? [[String: Any]] ?? []
            #expect(trees.map { $0["pid"] as? Int } == [Int(shape.root)])
            // a, b and the 30 queued sessions are behind the root; all 32 are one cycle, counted
            // as a queue of 32 members: 1 edge to it, 31 inside it.
            #expect(trees.first?["blocked_count"] as? Int == 32)
            #expect(trees.first?["chain_depth"] as? Int == 32)
            #expect((trees.first?["blocked"] as? [[String: Any]])?.map { $0["pid"] as? Int } == [Int(shape.a)])
            #expect((json["server"] as? [String: Any])?["blocked_sessions"] as? Int == 32)
            #expect(json["cycles"] as? [[Int]] == [([shape.a, shape.b] + shape.waiters).sorted().map { Int($0) }])
            let text = try runCLI(["check", "--dsn", dsn, "--no-color"]).output
            #expect(text.contains("Blocking tree: pid \(shape.root) blocks 32 sessions (chain depth 32)"), "\(text)")
            let members = ([shape.a, shape.b] + shape.waiters).sorted().map(String.init).joined(separator: ", ")
            #expect(text.contains("Sessions waiting on one another: pids \(members)"))

            // A scrape reads the same graph (it answered after 30 s at 100% CPU before).
            let exporter = try ExporterProcess(["--dsn", dsn])
            let metrics = try exporter.metrics()
            #expect(metrics.value("pg_blocked_sessions", ["datname": shape.database]) == 32)
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": shape.database]) == 32)
            #expect(metrics.value("pg_blocking_root_blocked_sessions", ["datname": shape.database, "pid": String(shape.root)]) == 32)

            // The same snapshot in process: the cost is counted, not timed. 33 sessions; edges
            // root→a, b→a, a→b, a→each w, each w→b, and each w→every later w: 2 + 1 + 30 + 30 + 435.
            let snapshot = try cluster.connect(database: shape.database).readSnapshot(statementTimeoutMilliseconds: 5000)
            let graph = BlockingGraph(sessions: snapshot.sessions)
            #expect(graph.nodeCount == 33)
            #expect(graph.edgeCount == 498)
            #expect(graph.cycles == [([shape.a, shape.b] + shape.waiters).sorted()])
            #expect(graph.roots.map(\.depth) == [32])
            #expect(graph.steps <= 6 * (graph.nodeCount + graph.edgeCount) + 2, "\(graph.steps) steps")
            print("graph steps on the 30-waiter cycle: \(graph.steps) for \(graph.nodeCount) nodes and \(graph.edgeCount) edges")
        }
    }
}
