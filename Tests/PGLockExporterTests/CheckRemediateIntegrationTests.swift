import Foundation
import Testing

@testable import PGLockExporter

/// Runs `pg_lock_exporter ARGS` to completion; stdout and stderr together.
func runCLI(_ arguments: [String]) throws -> Shell.Result {
    try Shell.run([ExporterProcess.binary] + arguments, timeout: 60)
}

extension IntegrationTests {
    /// `check` and `remediate` against the seed incident on a real PostgreSQL.
    @Suite struct CheckRemediateIntegrationTests {
        let cluster: TestCluster

        init() throws { cluster = try TestCluster.get() }

        func alive(_ pid: Int32) throws -> Bool {
            try cluster.connect().execute("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", [String(pid)]) { $0.int(0, 0)! } == 1
        }

        func stateOf(_ pid: Int32) throws -> String? {
            try cluster.connect().execute("SELECT state FROM pg_stat_activity WHERE pid = $1::int", [String(pid)]) {
                $0.rowCount == 0 ? nil : $0.string(0, 0)
            }
        }

        @Test func checkDrawsTheTreeInTextAndJSON() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database)
            let text = try runCLI(["check", "--dsn", dsn, "--no-color"])
            #expect(text.status == 0)
            let lines = text.output.split(separator: "\n").map(String.init)
            let h = incident.holderPID, m = incident.migrationPID, r = incident.readerPIDs
            #expect(lines[0].hasPrefix("PostgreSQL 15") || lines[0].hasPrefix("PostgreSQL 1"))
            #expect(lines[0].hasSuffix("· 4 client sessions: 3 active, 1 idle in transaction · 3 blocked"))
            #expect(lines.contains("Blocking tree: pid \(h) blocks 3 sessions (chain depth 2)"))
            let root = try #require(lines.firstIndex { $0.hasPrefix("pid \(h)  idle in transaction ") })
            #expect(lines[root].hasSuffix("db=\(incident.database) user=postgres app=worker client=local"))
            #expect(lines[root + 1] == "│  holds AccessShareLock on features")
            #expect(lines[root + 2] == "│  query: SELECT * FROM features LIMIT 1;")
            #expect(lines[root + 3].hasPrefix("└─ pid \(m)  waiting "))
            #expect(lines[root + 3].contains(" for AccessExclusiveLock on features  (active)"))
            #expect(lines[root + 4] == "   │  query: ALTER TABLE features ADD COLUMN signature text;")
            #expect(lines[root + 5].hasPrefix("   ├─ pid \(r[0])  waiting "))
            #expect(lines[root + 5].contains(" for AccessShareLock on features  (active)"))
            #expect(lines[root + 7].hasPrefix("   └─ pid \(r[1])  waiting "))

            let json = try runCLI(["check", "--dsn", dsn, "--format", "json"])
            #expect(json.status == 0)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            let trees = try #require(object["blocking_trees"] as? [[String: Any]])
            #expect(trees.count == 1)
            #expect(trees[0]["pid"] as? Int == Int(h))
            #expect(trees[0]["state"] as? String == "idle in transaction")
            #expect(trees[0]["blocked_count"] as? Int == 3)
            #expect(trees[0]["lock_mode"] as? String == "AccessShareLock")
            #expect(trees[0]["relation"] as? String == "features")
            #expect(trees[0]["application_name"] as? String == "worker")
            let migration = try #require((trees[0]["blocked"] as? [[String: Any]])?.first)
            #expect(migration["pid"] as? Int == Int(m))
            #expect(migration["lock_mode"] as? String == "AccessExclusiveLock")
            #expect((migration["wait_seconds"] as? Double ?? 0) > 0)
            let readers = try #require(migration["blocked"] as? [[String: Any]])
            #expect(readers.compactMap { $0["pid"] as? Int } == r.map(Int.init))
            #expect(readers.allSatisfy { ($0["blocked"] as? [Any])?.isEmpty == true })
            let server = try #require(object["server"] as? [String: Any])
            #expect(server["blocked_sessions"] as? Int == 3)
            #expect((object["sessions"] as? [Any])?.count == 4)
        }

        @Test func checkExitCodes() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database)
            #expect(try runCLI(["check", "--dsn", dsn, "--fail-on-blocking"]).status == 1)
            #expect(try runCLI(["check", "--dsn", dsn, "--fail-on-idle-in-transaction", "1h"]).status == 0)
            #expect(try runCLI(["check", "--dsn", dsn, "--fail-on-idle-in-transaction", "1ms"]).status == 1)
            let quiet = try cluster.createDatabase("quietcheck")
            let quietRun = try runCLI(["check", "--dsn", cluster.dsn(database: quiet), "--fail-on-blocking", "--query-chars", "0"])
            #expect(quietRun.status == 0)
            #expect(quietRun.output.contains("No session is blocked."))
            // The incident is in another database of the same server: --all-databases sees it.
            let wholeServer = try runCLI(["check", "--dsn", cluster.dsn(database: quiet), "--all-databases", "--fail-on-blocking"])
            #expect(wholeServer.status == 1)
            #expect(wholeServer.output.contains("Blocking tree: pid \(incident.holderPID) blocks 2 sessions (chain depth 2)"))
            let otherDB = try runCLI(["remediate", "--dsn", cluster.dsn(database: quiet), "--min-idle", "0s", "--execute"])
            #expect(otherDB.output.contains("Nothing to do"))
            #expect(try alive(incident.holderPID))
            let down = try runCLI(["check", "--dsn", "host=127.0.0.1 port=1 password=topsecret connect_timeout=2"])
            #expect(down.status == 2)
            #expect(down.output.contains("cannot read PostgreSQL"))
            #expect(!down.output.contains("topsecret"))
            #expect(try runCLI(["check", "--format", "yaml"]).status == 2)
        }

        @Test func dryRunChangesNothingThenExecuteEndsOnlyTheRootAndTheMigrationCompletes() throws {
            let incident = try Incident(cluster: cluster, readers: 2)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database)
            let dry = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s"])
            #expect(dry.status == 0)
            #expect(dry.output.contains("WOULD TERMINATE pid \(incident.holderPID) (db \(incident.database), user postgres, app worker, client local): root blocker idle in transaction for"))
            #expect(dry.output.contains("3 sessions waiting behind it"))
            #expect(try stateOf(incident.holderPID) == "idle in transaction")
            #expect(try stateOf(incident.migrationPID) == "active")

            let audit = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl").path
            defer { try? FileManager.default.removeItem(atPath: audit) }
            let run = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--audit-log", audit])
            #expect(run.status == 0)
            #expect(run.output.contains("TERMINATED pid \(incident.holderPID) "))
            #expect(run.output.contains("Terminated 1 session."))
            // The ALTER TABLE completes and the queued reads return; none of them was terminated.
            try eventually("the migration and the readers to finish") {
                try ([incident.migrationPID] + incident.readerPIDs).allSatisfy { try stateOf($0) == "idle" }
            }
            #expect(try !alive(incident.holderPID))
            let column = try cluster.connect(database: incident.database).execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'features' AND column_name = 'signature'"
            ) { $0.int(0, 0)! }
            #expect(column == 1)

            let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1)
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(entry["pid"] as? Int == Int(incident.holderPID))
            #expect(entry["action"] as? String == "terminate")
            #expect(entry["result"] as? String == "terminated")
            #expect(entry["blocked_sessions"] as? Int == 3)
            #expect(entry["state"] as? String == "idle in transaction")
            #expect(entry["application_name"] as? String == "worker")
            #expect(entry["backend_start"] != nil && entry["time"] != nil && entry["reason"] != nil)

            let again = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute"])
            #expect(again.status == 0)
            #expect(again.output.contains("Nothing to do"))
        }

        @Test func sessionsThatBlockNobodyAreLeftAloneUnlessAllIdleInTransaction() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database)
            let lonely = try PsqlSession(dsn: dsn, applicationName: "lonely")
            defer { lonely.kill() }
            lonely.send("BEGIN; SELECT 1;")
            let lonelyPID = try Incident.waitFor(cluster.connect(database: incident.database), "lonely", state: "idle in transaction")[0]

            let excluded = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--exclude-application", "work.*"])
            #expect(excluded.status == 0)
            #expect(excluded.output.contains("SKIPPED pid \(incident.holderPID) "))
            #expect(excluded.output.contains("application \"worker\" is excluded (--exclude-application work.*)"))
            let onlyOther = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--only-database", "elsewhere"])
            #expect(onlyOther.output.contains("is not in --only-database"))
            let young = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "1h", "--execute"])
            #expect(young.output.contains("less than --min-idle 1h"))
            #expect(try alive(incident.holderPID) && alive(lonelyPID))

            let defaultRun = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute"])
            #expect(!defaultRun.output.contains("pid \(lonelyPID)"))
            #expect(try alive(lonelyPID))
            #expect(try !alive(incident.holderPID))

            let wide = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute", "--all-idle-in-transaction"])
            #expect(wide.status == 0)
            #expect(wide.output.contains("TERMINATED pid \(lonelyPID) "))
            #expect(try !alive(lonelyPID))
        }

        @Test func namedPidRules() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let dsn = cluster.dsn(database: incident.database)
            let victim = try runCLI(["remediate", "--dsn", dsn, "--pid", String(incident.migrationPID), "--force", "--execute"])
            #expect(victim.status == 1)
            #expect(victim.output.contains("it is itself waiting on a lock: a victim, not the cause"))
            #expect(try alive(incident.migrationPID))

            let busy = try PsqlSession(dsn: dsn, applicationName: "busy")
            defer { busy.kill() }
            busy.send("SELECT pg_sleep(60);")
            let busyPID = try Incident.waitFor(cluster.connect(database: incident.database), "busy", state: "active")[0]
            let refused = try runCLI(["remediate", "--dsn", dsn, "--pid", String(busyPID), "--execute"])
            #expect(refused.status == 1)
            #expect(refused.output.contains("it is active, not idle in transaction (--force to terminate it anyway)"))
            #expect(try alive(busyPID))
            let forced = try runCLI(["remediate", "--dsn", dsn, "--pid", String(busyPID), "--force", "--execute"])
            #expect(forced.status == 0)
            #expect(forced.output.contains("TERMINATED pid \(busyPID) "))
            try eventually("the forced session to end") { try !alive(busyPID) }
            #expect(try runCLI(["remediate", "--dsn", dsn, "--force"]).status == 2)
        }

        @Test func rootThatMovesOnBetweenSelectionAndKillIsSkipped() throws {
            let incident = try Incident(cluster: cluster, readers: 0)
            defer { incident.end() }
            let connection = try PostgresConnection(ConnectionSettings(dsn: cluster.dsn(database: incident.database)))
            var policy = RemediationPolicy()
            policy.minIdleSeconds = 0
            let remediator = Remediator(policy: policy, execute: true)
            var decisions = try remediator.plan(on: connection)
            #expect(decisions.map(\.pid) == [incident.holderPID])
            #expect(decisions.map(\.action) == [.terminate])
            // The worker commits and opens a new transaction: same pid, new state_change.
            incident.holder.send("COMMIT; BEGIN; SELECT 2;")
            try eventually("the migration to complete once the worker committed") {
                try stateOf(incident.migrationPID) == "idle"
            }
            remediator.carryOut(&decisions, on: connection)
            #expect(decisions[0].result == .skipped)
            #expect(decisions[0].reason.hasPrefix("state changed"))
            #expect(try stateOf(incident.holderPID) == "idle in transaction")
        }

        @Test func pgSignalBackendRoleCannotEndASuperusersSessionAndSaysSo() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let admin = try cluster.connect()
            try admin.execute("DROP ROLE IF EXISTS lock_remediator") { _ in }
            try admin.execute("CREATE ROLE lock_remediator LOGIN IN ROLE pg_signal_backend, pg_monitor") { _ in }
            let dsn = cluster.dsn(database: incident.database, user: "lock_remediator")
            let run = try runCLI(["remediate", "--dsn", dsn, "--min-idle", "0s", "--execute"])
            #expect(run.status == 1)
            #expect(run.output.contains("FAILED pid \(incident.holderPID) "))
            #expect(run.output.contains("PostgreSQL refused:"))
            #expect(run.output.contains("(SQLSTATE 42501)"))
            #expect(try alive(incident.holderPID))
        }
    }
}
