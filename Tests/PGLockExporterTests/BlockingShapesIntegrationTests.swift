import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// Production blocking beyond the seed incident, each shape made for real on the server and
    /// read three ways: the metrics, `check --format json`, and `remediate`'s dry run.
    @Suite struct BlockingShapesIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        /// A database with `features` (10 rows), and a superuser connection to it.
        func database(_ prefix: String) throws -> (name: String, admin: PostgresConnection) {
            let name = try cluster.createDatabase(prefix)
            let admin = try cluster.connect(database: name)
            try admin.execute("CREATE TABLE features (id int PRIMARY KEY, name text)") { _ in }
            try admin.execute("INSERT INTO features SELECT g, 'f' || g FROM generate_series(1, 10) g") { _ in }
            return (name, admin)
        }

        func pids(_ admin: PostgresConnection, application: String, waiting: Bool? = nil, count: Int = 1) throws -> [Int32] {
            var found: [Int32] = []
            try eventually("\(count) \(application) session(s)\(waiting == true ? " waiting on a lock" : "")") {
                found = try admin.execute(
                    """
                    SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND backend_type = 'client backend'
                      AND ($2::bool IS NULL
                           OR (coalesce(wait_event_type = 'Lock', false) = $2::bool AND ($2::bool OR state <> 'active')))
                    ORDER BY pid
                    """, [application, waiting.map { $0 ? "true" : "false" }]
                ) { r in (0..<r.rowCount).map { Int32(r.int($0, 0)!) } }
                return found.count == count
            }
            return found
        }

        func checkJSON(_ dsn: String) throws -> [String: Any] {
            let run = try runCLI(["check", "--dsn", dsn, "--format", "json"])
            #expect(run.status == 0)
            return try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
        }

        func trees(_ json: [String: Any]) -> [[String: Any]] { json["blocking_trees"] as? [[String: Any]] ?? [] }
        func children(_ node: [String: Any]) -> [[String: Any]] { node["blocked"] as? [[String: Any]] ?? [] }

        @Test func aRowLockNamesTheTransactionAndTheRow() throws {
            let (db, admin) = try database("rowlock")
            let dsn = cluster.dsn(database: db)
            let holder = try PsqlSession(dsn: dsn, applicationName: "holder")
            defer { holder.kill() }
            holder.send("BEGIN; UPDATE features SET name = 'held' WHERE id = 1;")
            let h = try pids(admin, application: "holder", waiting: false)[0]
            let xid = try admin.execute("SELECT backend_xid::text FROM pg_stat_activity WHERE pid = $1::int", [String(h)]) { $0.string(0, 0)! }
            let updater = try PsqlSession(dsn: dsn, applicationName: "updater")
            defer { updater.kill() }
            updater.send("UPDATE features SET name = 'wanted' WHERE id = 1;")
            let u = try pids(admin, application: "updater", waiting: true)[0]

            let exporter = try ExporterProcess(["--dsn", dsn])
            let metrics = try exporter.metrics()
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 1)
            #expect(metrics.value("pg_blocking_root_blocked_sessions", ["datname": db, "pid": String(h), "state": "idle in transaction"]) == 1)
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": db]) == 1)
            #expect(metrics.value("pg_lock_waiting_sessions", ["datname": db, "relation": "features"]) == 1)

            let tree = try #require(trees(try checkJSON(dsn)).first)
            #expect(tree["pid"] as? Int == Int(h))
            #expect(tree["chain_depth"] as? Int == 1)
            #expect(tree["lock_mode"] as? String == "ExclusiveLock")
            #expect(tree["relation"] as? String == "transaction \(xid)")
            let waiter = try #require(children(tree).first)
            #expect(waiter["pid"] as? Int == Int(u))
            #expect(waiter["lock_mode"] as? String == "ShareLock")
            #expect(waiter["relation"] as? String == "transaction \(xid), row (0,1) of features")
            #expect((waiter["lock"] as? [String: Any])?["locktype"] as? String == "transactionid")
            #expect((waiter["row"] as? [String: Any])?["tuple"] as? Int == 1)
            let text = try runCLI(["check", "--dsn", dsn, "--no-color"]).output
            #expect(text.contains("pid \(u)  waiting "))
            #expect(text.contains(" for ShareLock on transaction \(xid), row (0,1) of features  (active)"), "\(text)")

            let dryRun = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"])
            #expect(dryRun.output.contains("WOULD TERMINATE pid \(h) "), "\(dryRun.output)")
        }

        @Test func anAdvisoryLockChainNamesTheKey() throws {
            let (db, admin) = try database("advisory")
            let dsn = cluster.dsn(database: db)
            let holder = try PsqlSession(dsn: dsn, applicationName: "holder")
            defer { holder.kill() }
            holder.send("SELECT pg_advisory_lock(42);")
            let h = try pids(admin, application: "holder", waiting: false)[0]
            let first = try PsqlSession(dsn: dsn, applicationName: "first")
            defer { first.kill() }
            first.send("SELECT pg_advisory_lock(42);")
            let a = try pids(admin, application: "first", waiting: true)[0]
            let second = try PsqlSession(dsn: dsn, applicationName: "second")
            defer { second.kill() }
            second.send("SELECT pg_advisory_lock(42);")
            let b = try pids(admin, application: "second", waiting: true)[0]

            let metrics = try ExporterProcess(["--dsn", dsn]).metrics()
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 2)
            // The second waiter queues behind the holder and the first waiter: holder → first → second.
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": db]) == 2)
            #expect(metrics.value("pg_blocking_root_blocked_sessions", ["datname": db, "pid": String(h), "state": "idle"]) == 2)
            #expect(metrics.all("pg_lock_waiting_sessions", ["datname": db]).isEmpty, "an advisory lock is on no relation")

            let tree = try #require(trees(try checkJSON(dsn)).first)
            #expect(tree["pid"] as? Int == Int(h))
            #expect(tree["state"] as? String == "idle")
            #expect(tree["relation"] as? String == "advisory lock 42")
            #expect(tree["chain_depth"] as? Int == 2)
            let lock = try #require(tree["lock"] as? [String: Any])
            #expect(lock["advisory_key"] as? Int == 42)
            #expect(lock["classid"] as? Int == 0)
            #expect(lock["objid"] as? Int == 42)
            let waiters = children(tree)
            #expect(waiters.compactMap { $0["pid"] as? Int }.sorted() == [Int(a), Int(b)].sorted())

            let dryRun = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"])
            #expect(dryRun.output.contains("SKIPPED pid \(h) "))
            #expect(dryRun.output.contains("it is idle, not idle in transaction"), "\(dryRun.output)")
        }

        @Test func aPreparedTransactionIsARootNamedByItsGid() throws {
            let (db, admin) = try database("prepared")
            let dsn = cluster.dsn(database: db)
            let gid = "deploy-\(UInt32.random(in: 0..<UInt32.max))"
            let preparer = try PsqlSession(dsn: dsn, applicationName: "preparer")
            preparer.send("BEGIN; SELECT * FROM features LIMIT 1; PREPARE TRANSACTION '\(gid)';")
            defer { _ = try? admin.execute("ROLLBACK PREPARED '\(gid)'") { _ in } }
            try eventually("the prepared transaction") {
                try admin.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", [gid]) { $0.int(0, 0)! } == 1
            }
            preparer.kill()  // nobody runs it any more: it is pid 0 now
            let migration = try PsqlSession(dsn: dsn, applicationName: "alembic")
            defer { migration.kill() }
            migration.send("ALTER TABLE features ADD COLUMN signature text;")
            let m = try pids(admin, application: "alembic", waiting: true)[0]
            let readers = try (0..<2).map { _ in try PsqlSession(dsn: dsn, applicationName: "web") }
            defer { readers.forEach { $0.kill() } }
            readers.forEach { $0.send("SELECT count(*) FROM features;") }
            _ = try pids(admin, application: "web", waiting: true, count: 2)
            usleep(1_100_000)  // an age of at least a second

            let metrics = try ExporterProcess(["--dsn", dsn]).metrics()
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 3)
            let roots = metrics.all("pg_blocking_root_blocked_sessions", ["datname": db])
            #expect(roots.count == 1)
            #expect(roots.first?.labels["pid"] == "0")
            #expect(roots.first?.labels["gid"] == gid)
            #expect(roots.first?.labels["state"] == "prepared transaction")
            #expect(roots.first?.labels["usename"] == "postgres")
            #expect(roots.first?.value == 3)
            let age = try #require(metrics.value("pg_blocking_root_state_seconds", ["datname": db, "gid": gid]))
            #expect(age >= 1 && age < 30)

            let tree = try #require(trees(try checkJSON(dsn)).first)
            #expect(tree["pid"] as? Int == 0)
            #expect(tree["gid"] as? String == gid)
            #expect(tree["datname"] as? String == db)
            #expect(tree["state"] as? String == "prepared transaction")
            #expect(tree["blocked_count"] as? Int == 3)
            #expect(tree["hint"] as? String == "ROLLBACK PREPARED '\(gid)' throws its work away; COMMIT PREPARED '\(gid)' keeps it")
            #expect(tree["lock_mode"] as? String == "AccessShareLock", "what it holds that the ALTER wants")
            #expect(tree["relation"] as? String == "features")
            #expect(children(tree).first?["pid"] as? Int == Int(m))

            for mode in [[], ["--execute"]] {
                let run = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"] + mode)
                #expect(run.output.contains("SKIPPED pid 0 (db \(db), user postgres): prepared transaction '\(gid)' holds the lock"), "\(run.output)")
                #expect(run.output.contains("a person may run ROLLBACK PREPARED '\(gid)'"))
            }
            #expect(try admin.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", [gid]) { $0.int(0, 0)! } == 1)
            #expect(try pids(admin, application: "alembic", waiting: true) == [m], "nothing was terminated")
        }

        @Test func aParallelQueryCountsAsOneBlockedSession() throws {
            let (db, admin) = try database("parallel")
            let dsn = cluster.dsn(database: db)
            try admin.execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 20000) g") { _ in }
            try admin.execute("ANALYZE big") { _ in }
            try admin.execute("CREATE TABLE other (x int)") { _ in }
            // plpgsql is not inlined: the planner does not lock `other`, each process opens it as
            // it runs, so the leader and its workers all queue for it.
            try admin.execute(
                "CREATE FUNCTION touch(int) RETURNS bool LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$ BEGIN PERFORM 1 FROM other; RETURN true; END $$"
            ) { _ in }
            let holder = try PsqlSession(dsn: dsn, applicationName: "holder")
            defer { holder.kill() }
            holder.send("BEGIN; LOCK TABLE other IN ACCESS EXCLUSIVE MODE;")
            let h = try pids(admin, application: "holder", waiting: false)[0]
            let scan = try PsqlSession(dsn: dsn, applicationName: "scan")
            defer { scan.kill() }
            scan.send(
                "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2; SELECT count(*) FROM big WHERE touch(id);"
            )
            let leader = try pids(admin, application: "scan", waiting: nil)
            // The harm folding prevents: the server shows each worker as a waiter of its own.
            var workers = 0
            try eventually("parallel workers waiting on the lock") {
                workers = try admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker' AND leader_pid = $1::int AND wait_event_type = 'Lock'",
                    [String(leader[0])]
                ) { $0.int(0, 0)! }
                return workers >= 1
            }
            let metrics = try ExporterProcess(["--dsn", dsn]).metrics()
            #expect(metrics.value("pg_blocked_sessions", ["datname": db]) == 1, "\(workers) workers folded into their leader")
            #expect(metrics.value("pg_blocking_root_blocked_sessions", ["datname": db, "pid": String(h)]) == 1)
            #expect(metrics.value("pg_lock_waiting_sessions", ["datname": db, "relation": "other"]) == 1)
            let tree = try #require(trees(try checkJSON(dsn)).first)
            #expect(children(tree).compactMap { $0["pid"] as? Int } == [Int(leader[0])])
            let dryRun = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"])
            #expect(dryRun.output.contains("WOULD TERMINATE pid \(h) (db \(db), user postgres, app holder"), "\(dryRun.output)")
            #expect(dryRun.output.contains("1 session waiting behind it"), "\(dryRun.output)")
        }

        @Test func hostileTextReachesTheTerminalWithItsControlCharactersVisible() throws {
            let (db, admin) = try database("hostile")
            let dsn = cluster.dsn(database: db)
            let esc = "\u{1B}"
            try admin.execute("CREATE TABLE \"\(esc)[2Jlure\" (x int)") { _ in }
            let holder = try PsqlSession(dsn: dsn, applicationName: "holder")
            defer { holder.kill() }
            // application_name keeps printable ASCII only (the server turns the rest into '?');
            // query text and relation names keep every byte.
            holder.send("SET application_name = 'x\(esc)]0;pwned\u{07}'; BEGIN; SELECT '\(esc)]0;pwned\u{07}\(esc)[2J' FROM \"\(esc)[2Jlure\";")
            var h: Int32 = 0
            try eventually("the holder idle in transaction") {
                h = try admin.execute(
                    "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
                ) { Int32($0.int(0, 0)!) }
                return h != 0
            }
            let waiter = try PsqlSession(dsn: dsn, applicationName: "waiter")
            defer { waiter.kill() }
            waiter.send("DROP TABLE \"\(esc)[2Jlure\";")
            _ = try pids(admin, application: "waiter", waiting: true)

            let text = try runCLI(["check", "--dsn", dsn, "--no-color"]).output
            #expect(!text.utf8.contains(0x1B), "a raw ESC reached the terminal")
            #expect(!text.utf8.contains(0x07), "a raw BEL reached the terminal")
            #expect(text.contains("\\x1b]0;pwned\\x07\\x1b[2J"), "\(text)")
            #expect(text.contains("on \"\\x1b[2Jlure\""), "\(text)")
            let json = try runCLI(["check", "--dsn", dsn, "--format", "json"])
            #expect(!json.output.utf8.contains(0x1B))
            #expect(json.output.contains("\\u001b[2J"))
            let dryRun = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"])
            #expect(!dryRun.output.utf8.contains(0x1B))
            #expect(dryRun.output.contains("WOULD TERMINATE pid \(h) "))
        }

        /// A hot standby made from a primary of its own: the startup process waits to replay an
        /// `ALTER TABLE` behind a reader's snapshot, and later readers queue behind it.
        @Test func onAHotStandbyTheReaderHoldingItsSnapshotIsTheRoot() throws {
            let script = TestCluster.packageRoot.appendingPathComponent("scripts/pg-sandbox").path
            let primaryDir = "/tmp/pg-lock-primary-\(getpid())", standbyDir = "/tmp/pg-lock-standby-\(getpid())"
            // Random ports, retried like TestCluster's: another process may hold the first pick.
            var primaryPort = 0, standbyPort = 0
            defer {
                for dir in [standbyDir, primaryDir] {
                    _ = try? Shell.run([script, "stop", dir])
                    _ = try? Shell.run(["rm", "-rf", dir])
                }
            }
            var primaryStart = Shell.Result(status: -1, output: "")
            for _ in 0..<5 where primaryStart.status != 0 {
                primaryPort = Int.random(in: 20000..<60000)
                primaryStart = try Shell.run([script, "start", primaryDir, String(primaryPort)])
            }
            try #require(primaryStart.status == 0, "\(primaryStart.output)")
            let primaryDSN = "host=\(primaryDir) port=\(primaryPort) user=postgres dbname=postgres"
            let primary = try PostgresConnection(ConnectionSettings(dsn: primaryDSN))
            try primary.execute("CREATE TABLE features (id int PRIMARY KEY, name text)") { _ in }
            try primary.execute("INSERT INTO features SELECT g, 'f' || g FROM generate_series(1, 10) g") { _ in }
            var standbyStart = Shell.Result(status: -1, output: "")
            for _ in 0..<5 where standbyStart.status != 0 {
                standbyPort = Int.random(in: 20000..<60000)
                standbyStart = try Shell.run([script, "standby", standbyDir, String(standbyPort), primaryDir, String(primaryPort)])
            }
            try #require(standbyStart.status == 0, "\(standbyStart.output)")
            let standbyDSN = "host=\(standbyDir) port=\(standbyPort) user=postgres dbname=postgres"
            let standby = try PostgresConnection(ConnectionSettings(dsn: standbyDSN))
            try eventually("the standby to have the table") {
                (try? standby.execute("SELECT count(*) FROM features") { $0.int(0, 0)! }) == 10
            }
            let reader = try PsqlSession(dsn: standbyDSN, applicationName: "reader")
            defer { reader.kill() }
            reader.send("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM features;")
            let r = try pids(standby, application: "reader", waiting: false)[0]
            try primary.execute("ALTER TABLE features ADD COLUMN signature text") { _ in }
            var startup: Int32 = 0
            try eventually("the startup process to wait behind the reader") {
                startup = try standby.execute(
                    "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'startup' AND wait_event_type = 'Lock'"
                ) { Int32($0.int(0, 0)!) }
                return startup != 0
            }
            let queued = try PsqlSession(dsn: standbyDSN, applicationName: "queued")
            defer { queued.kill() }
            queued.send("SELECT count(*) FROM features;")
            let q = try pids(standby, application: "queued", waiting: true)[0]

            let metrics = try ExporterProcess(["--dsn", standbyDSN]).metrics()
            #expect(metrics.value("pg_up") == 1)
            #expect(metrics.value("pg_blocked_sessions", ["datname": "postgres"]) == 2, "the startup process and the queued reader")
            #expect(metrics.value("pg_blocking_chain_depth_max", ["datname": "postgres"]) == 2)
            let roots = metrics.all("pg_blocking_root_blocked_sessions", ["datname": "postgres"])
            #expect(roots.map { $0.labels["pid"] } == [String(r)])
            #expect(roots.first?.labels["state"] == "idle in transaction")
            #expect(roots.first?.value == 2)

            let tree = try #require(trees(try checkJSON(standbyDSN)).first)
            #expect(tree["pid"] as? Int == Int(r))
            #expect(tree["chain_depth"] as? Int == 2)
            let startupNode = try #require(children(tree).first)
            #expect(startupNode["pid"] as? Int == Int(startup))
            #expect(startupNode["state"] as? String == "startup")
            #expect(startupNode["lock_mode"] as? String == "AccessExclusiveLock")
            #expect(children(startupNode).compactMap { $0["pid"] as? Int } == [Int(q)])

            let dryRun = try runCLI(["remediate", "--dsn", standbyDSN, "--min-idle", "0s"])
            #expect(dryRun.output.contains("WOULD TERMINATE pid \(r) (db postgres, user postgres, app reader"), "\(dryRun.output)")
            #expect(!dryRun.output.contains("pid \(startup)"), "the startup process is never a target: \(dryRun.output)")
        }
    }
}
