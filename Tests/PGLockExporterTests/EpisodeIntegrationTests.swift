import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// Blocking episodes (issue 20) recorded by the real exporter from a real PostgreSQL, read back
    /// from the store file after the exporter stopped, with its log events and metrics.
    @Suite struct EpisodeIntegrationTests {
        typealias Timestamp = EpisodeRecord.Timestamp
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        // MARK: Fixtures

        /// A store path in a new directory of its own (removed with `EpisodeStoreFixtures.remove`).
        func storePath() throws -> (directory: String, path: String) {
            let directory = try EpisodeStoreFixtures.directory()
            return (directory, directory + "/episodes.db")
        }

        /// `serve` against `database`, episodes into `path`, JSON logs.
        func exporter(_ database: String, path: String, _ extra: [String] = []) throws -> ExporterProcess {
            try ExporterProcess(["--dsn", cluster.dsn(database: database), "--episodes.path", path, "--log.format", "json"] + extra)
        }

        /// Stops the exporter (SIGTERM: exit 0) and reads the episodes of `database` from the
        /// store file, oldest first.
        func stopAndRead(_ exporter: ExporterProcess, path: String, database: String) throws -> [EpisodeRecord] {
            #expect(try exporter.terminate() == 0, "\(exporter.log)")
            let store = try EpisodeStore.open(path: path)
            defer { store.close() }
            return try store.episodes(datname: database, limit: 1000).reversed()
        }

        /// The JSON log lines that carry an `event`.
        func events(_ log: String) -> [[String: String]] {
            log.split(separator: "\n").compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
                      object["event"] != nil else { return nil }
                return object
            }
        }

        /// `pg_locks.waitstart` of `pid`'s ungranted lock, in seconds since the epoch.
        func waitstart(_ database: String, _ pid: Int32) throws -> Double {
            // waitstart can be NULL for a moment after the wait began.
            var value: Double?
            try eventually("pid \(pid)'s waitstart") {
                value = try cluster.connect(database: database).execute(
                    "SELECT extract(epoch FROM waitstart)::float8 FROM pg_locks WHERE pid = $1::int AND NOT granted AND waitstart IS NOT NULL",
                    [String(pid)]
                ) { $0.rowCount == 0 ? nil : $0.double(0, 0) }
                return value != nil
            }
            return try #require(value)
        }

        /// `backend_start` of `pid`, in microseconds since the epoch.
        func backendStart(_ pid: Int32) throws -> Int64 {
            let value = try cluster.connect().execute(
                "SELECT (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity WHERE pid = $1::int", [String(pid)]
            ) { $0.rowCount == 0 ? nil : $0.int(0, 0) }
            return Int64(try #require(value))
        }

        /// Waits until no session of `database` waits on a lock.
        func waitUntilNothingWaits(_ database: String) throws {
            try eventually("no session of \(database) to wait on a lock") {
                try cluster.connect(database: database).execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ) { $0.int(0, 0)! } == 0
            }
        }

        /// A psql session of `application` that sent `sql`, once it is in `state` (nil: waiting on
        /// a lock); and its pid.
        func session(_ database: String, _ application: String, _ sql: String, state: String? = nil) throws -> (PsqlSession, Int32) {
            let session = try PsqlSession(dsn: cluster.dsn(database: database), applicationName: application)
            session.send(sql)
            let pid = try Incident.waitFor(cluster.connect(database: database), application, state: state, waitingOnLock: state == nil)
            return (session, pid.first!)
        }

        func execute(_ database: String, _ sql: String) throws {
            try cluster.connect(database: database).execute(sql) { _ in }
        }

        static func seconds(_ t: Timestamp?) -> Double { t?.secondsSinceEpoch ?? .nan }

        // MARK: Tests

        /// The seed incident for about 4 s under the default `--sample.interval` (1s), then
        /// `remediate --execute`: one episode, named as it happened, ended `root_ended` by the
        /// termination; its two log events and its metrics.
        @Test func seedIncidentTerminatedByRemediateIsOneEpisode() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("seed")
            let exporter = try exporter(database, path: path)
            let incident = try Incident(cluster: cluster, readers: 2, database: database)
            defer { incident.end() }
            let firstWait = try waitstart(database, incident.migrationPID)
            let holderStart = try backendStart(incident.holderPID)
            Thread.sleep(forTimeInterval: 4)
            let before = Timestamp.now().secondsSinceEpoch
            let run = try runCLI(["remediate", "--dsn", cluster.dsn(database: database), "--min-idle", "0s", "--execute"])
            let after = Timestamp.now().secondsSinceEpoch
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("TERMINATED pid \(incident.holderPID) "))
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 1.5)  // a sample sees the end
            let metrics = try exporter.metrics()
            let episodes = try stopAndRead(exporter, path: path, database: database)

            #expect(episodes.count == 1)
            let episode = try #require(episodes.first)
            #expect(episode.target == "default")
            #expect(episode.datname == database)
            #expect(episode.root.pid == incident.holderPID)
            #expect(episode.root.backendStart?.microsecondsSinceEpoch == holderStart)
            #expect(episode.root.query == "SELECT * FROM features LIMIT $1")
            #expect(episode.root.applicationName == "worker")
            #expect(episode.peakBlocked == 3)
            #expect(episode.blockedTotal == 3)
            #expect(episode.maxDepth == 2)
            #expect(episode.lock?.relation == "features")
            #expect(episode.ongoing == false)
            #expect(episode.end == .rootEnded)
            #expect(episode.endCause?.contains("terminated") == true, "end_cause: \(episode.endCause ?? "nil")")
            let startError = Self.seconds(episode.startedAt) - firstWait
            #expect(abs(startError) <= 0.2, "started_at - first waitstart: \(startError)")
            let ended = Self.seconds(episode.endedAt)
            #expect(ended >= before && ended <= after + 1.1, "ended_at - remediate start: \(ended - before), - remediate end: \(ended - after)")
            #expect(abs(episode.durationSeconds - (ended - Self.seconds(episode.startedAt))) < 0.001)
            print("seed: started_at - waitstart \(startError) s; ended_at - remediate [start \(ended - before), end \(ended - after)] s; duration \(episode.durationSeconds) s; samples \(episode.samples); end_cause \(episode.endCause ?? "nil")")

            // Log events: one start (after --episodes.log-after, 1s), one end, the record's fields.
            let logged = events(exporter.log)
            #expect(logged.map { $0["event"] } == ["blocking_episode_started", "blocking_episode_ended"], "\(exporter.log)")
            for event in logged {
                #expect(event["id"] == episode.id)
                #expect(event["target"] == "default")
                #expect(event["datname"] == database)
                #expect(event["root_pid"] == String(incident.holderPID))
                #expect(event["root_usename"] == "postgres")
                #expect(event["root_application_name"] == "worker")
                #expect(event["root_client_addr"] == "local")
                #expect(event["query"] == "SELECT * FROM features LIMIT $1")
            }
            #expect(logged.first?["msg"] == "blocking episode started")
            #expect(logged.first?["blocked"] == "3")
            #expect(logged.first?["end"] == nil)
            #expect(logged.last?["msg"] == "blocking episode ended")
            #expect(logged.last?["end"] == "root_ended")
            #expect(logged.last?["end_cause"] == episode.endCause)
            #expect(logged.last?["blocked"] == "3")
            #expect(logged.last.flatMap { $0["duration_seconds"] }.flatMap(Double.init) == (episode.durationSeconds * 1000).rounded() / 1000)

            // Metrics.
            #expect(metrics.value("pg_blocking_episodes_total", ["datname": database]) == 1)
            #expect(metrics.value("pg_blocking_episodes_ended_total", ["datname": database, "end": "root_ended"]) == 1)
            #expect(metrics.value("pg_blocking_episodes_ended_total", ["datname": database, "end": "released"]) == 0)
            #expect(metrics.value("pg_blocking_episodes_ongoing", ["datname": database]) == 0)
            #expect(metrics.value("pg_blocking_episode_duration_seconds_count", ["datname": database]) == 1)
            #expect(metrics.value("pg_blocking_episode_duration_seconds_bucket", ["datname": database, "le": "2"]) == 0)
            #expect(metrics.value("pg_blocking_episode_duration_seconds_bucket", ["datname": database, "le": "10"]) == 1)
            #expect(metrics.value("pg_lock_exporter_episode_store_errors_total") == 0)
        }

        /// A root that commits: `released`.
        @Test func rootThatCommitsIsReleased() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("released")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let incident = try Incident(cluster: cluster, readers: 0, database: database)
            defer { incident.end() }
            Thread.sleep(forTimeInterval: 1.5)
            incident.holder.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.count == 1)
            let episode = try #require(episodes.first)
            #expect(episode.root.pid == incident.holderPID)
            #expect(episode.end == .released)
            #expect(episode.endCause == nil)
            #expect(episode.peakBlocked == 1)
            #expect(episode.maxDepth == 1)
            #expect(episode.waiters.map(\.pid) == [incident.migrationPID])
            print("released: duration \(episode.durationSeconds) s, samples \(episode.samples)")
        }

        /// A migration cancelled by its own `lock_timeout` while the root stays idle in
        /// transaction: `waiters_gone`.
        @Test func migrationGivingUpIsWaitersGone() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("gaveup")
            try execute(database, "CREATE TABLE features (id int)")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let (holder, holderPID) = try session(database, "worker", "BEGIN; SELECT * FROM features LIMIT 1;", state: "idle in transaction")
            defer { holder.kill() }
            let (migration, migrationPID) = try session(database, "flyway", "SET lock_timeout = '2s'; ALTER TABLE features ADD COLUMN other text;")
            defer { migration.kill() }
            let waitStart = try waitstart(database, migrationPID)
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            #expect(try cluster.connect(database: database).execute(
                "SELECT state FROM pg_stat_activity WHERE pid = $1::int", [String(holderPID)]) { $0.string(0, 0) }
                == "idle in transaction")
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.count == 1)
            let episode = try #require(episodes.first)
            #expect(episode.root.pid == holderPID)
            #expect(episode.end == .waitersGone)
            #expect(episode.endCause == nil)
            #expect(episode.peakBlocked == 1)
            #expect(episode.waiters.map(\.pid) == [migrationPID])
            #expect(migration.output.contains("canceling statement due to lock timeout"), "\(migration.output)")
            // It ended when flyway gave up, 2 s after it began to wait (at most one interval later).
            let ended = Self.seconds(episode.endedAt) - waitStart
            #expect(ended >= 2 && ended <= 2.35, "ended_at - flyway's waitstart: \(ended)")
            let started = Self.seconds(episode.startedAt) - waitStart
            #expect(abs(started) <= 0.2, "started_at - flyway's waitstart: \(started)")
            print("waiters_gone: started_at - waitstart \(started) s, ended_at - waitstart \(ended) s (lock_timeout 2s, interval 250ms)")
        }

        /// An episode of 2 s between two scrapes 15 s apart is recorded: sampling needs no scrape.
        @Test func shortEpisodeBetweenScrapesIsRecorded() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("between")
            let exporter = try exporter(database, path: path)
            let first = try exporter.metrics()
            let firstScrape = Date()
            #expect(first.value("pg_blocking_episodes_total", ["datname": database]) == 0)
            let incident = try Incident(cluster: cluster, readers: 1, database: database)
            defer { incident.end() }
            let waitStart = try waitstart(database, incident.migrationPID)
            Thread.sleep(forTimeInterval: max(0, 2 - (Timestamp.now().secondsSinceEpoch - waitStart)))
            incident.holder.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: max(0, 15 - Date().timeIntervalSince(firstScrape)))
            let second = try exporter.metrics()
            #expect(second.value("pg_blocking_episodes_total", ["datname": database]) == 1)
            #expect(second.value("pg_blocking_episodes_ended_total", ["datname": database, "end": "released"]) == 1)
            #expect(second.value("pg_blocking_episode_duration_seconds_bucket", ["datname": database, "le": "1"]) == 0)
            #expect(second.value("pg_blocking_episode_duration_seconds_bucket", ["datname": database, "le": "5"]) == 1)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.count == 1)
            let episode = try #require(episodes.first)
            #expect(episode.end == .released)
            #expect(episode.peakBlocked == 2)
            #expect(episode.durationSeconds >= 2 && episode.durationSeconds <= 3.2, "duration \(episode.durationSeconds)")
            print("between scrapes: duration \(episode.durationSeconds) s, samples \(episode.samples)")
        }

        /// Two roots in one database at once are two episodes.
        @Test func twoRootsAreTwoEpisodes() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("tworoots")
            try execute(database, "CREATE TABLE a (id int)")
            try execute(database, "CREATE TABLE b (id int)")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let dsn = cluster.dsn(database: database)
            var sessions: [PsqlSession] = []
            defer { sessions.forEach { $0.kill() } }
            let admin = try cluster.connect(database: database)
            var roots: [Int32] = []
            for table in ["a", "b"] {
                let holder = try PsqlSession(dsn: dsn, applicationName: "holder-\(table)")
                holder.send("BEGIN; SELECT * FROM \(table);")
                roots += try Incident.waitFor(admin, "holder-\(table)", state: "idle in transaction")
                let waiter = try PsqlSession(dsn: dsn, applicationName: "waiter-\(table)")
                waiter.send("ALTER TABLE \(table) ADD COLUMN x int;")
                _ = try Incident.waitFor(admin, "waiter-\(table)", waitingOnLock: true)
                sessions += [holder, waiter]
            }
            Thread.sleep(forTimeInterval: 1)
            sessions[0].send("COMMIT;")
            sessions[2].send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.count == 2)
            #expect(Set(episodes.compactMap(\.root.pid)) == Set(roots))
            #expect(Set(episodes.compactMap(\.lock?.relation)) == ["a", "b"])
            #expect(episodes.allSatisfy { $0.peakBlocked == 1 && $0.end == .released })
            #expect(Set(episodes.map(\.id)).count == 2)
        }

        /// A chain whose root commits and whose next session becomes a root: a second episode that
        /// starts when that session began to block (its waiter's waitstart).
        @Test func chainWhoseRootCommitsGivesASecondEpisode() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("chain")
            try execute(database, "CREATE TABLE features (id int)")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let (holder, holderPID) = try session(database, "worker", "BEGIN; SELECT * FROM features LIMIT 1;", state: "idle in transaction")
            defer { holder.kill() }
            // The migration keeps its transaction open once it has its lock.
            let (migration, migrationPID) = try session(database, "migrator", "BEGIN; ALTER TABLE features ADD COLUMN held text;")
            defer { migration.kill() }
            let (reader, readerPID) = try session(database, "reader", "SELECT count(*) FROM features;")
            defer { reader.kill() }
            let firstWait = try waitstart(database, migrationPID)
            let readerWait = try waitstart(database, readerPID)
            Thread.sleep(forTimeInterval: 1.5)
            holder.send("COMMIT;")
            _ = try Incident.waitFor(cluster.connect(database: database), "migrator", state: "idle in transaction")
            Thread.sleep(forTimeInterval: 1.5)
            migration.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.map(\.root.pid) == [holderPID, migrationPID])
            #expect(episodes.map(\.end) == [.released, .released])
            let first = try #require(episodes.first), second = try #require(episodes.last)
            #expect(first.peakBlocked == 2)
            #expect(first.maxDepth == 2)
            #expect(second.peakBlocked == 1)
            #expect(second.waiters.map(\.pid) == [readerPID])
            let firstError = Self.seconds(first.startedAt) - firstWait
            let secondError = Self.seconds(second.startedAt) - readerWait
            #expect(abs(firstError) <= 0.2, "first started_at - migrator's waitstart: \(firstError)")
            #expect(abs(secondError) <= 0.2, "second started_at - reader's waitstart: \(secondError)")
            print("chain: first started_at - waitstart \(firstError) s, second started_at - reader's waitstart \(secondError) s")
        }

        /// The server restarts under an ongoing episode: it ends `unobserved` at the last sample
        /// that saw it (the sampler lost sight), and an episode after the restart is recorded
        /// though nothing scrapes: the sampler reconnects by itself.
        @Test func serverRestartEndsTheEpisodeUnobservedAndSamplingReconnects() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("restarted")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let first = try Incident(cluster: cluster, readers: 0, database: database)
            Thread.sleep(forTimeInterval: 1)
            let stopping = Timestamp.now().secondsSinceEpoch
            try cluster.stop()
            first.end()
            Thread.sleep(forTimeInterval: 1)
            try cluster.start()
            let second = try Incident(cluster: cluster, readers: 0, database: database)
            defer { second.end() }
            Thread.sleep(forTimeInterval: 1)
            second.holder.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.map(\.root.pid) == [first.holderPID, second.holderPID])
            #expect(episodes.map(\.end) == [.unobserved, .released])
            let lastSeen = Self.seconds(episodes.first?.endedAt) - stopping
            #expect(lastSeen <= 0 && lastSeen >= -0.3, "ended_at of the unobserved episode - server stop: \(lastSeen)")
            print("restart: unobserved episode ended_at - server stop \(lastSeen) s")
        }

        /// With `--config.file`, every target's episodes go to the one store, named by target, and
        /// each target's `/probe` counts its own. A target sees the whole server (as its gauges
        /// do), so two targets naming two databases of one server both record the episode: two
        /// records, two ids, one per target.
        @Test func multiTargetEpisodesNameTheirTarget() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("targets")
            let quiet = try cluster.createDatabase("quiet")
            let config = directory + "/targets.yml"
            try """
                targets:
                  busy:
                    dsn: "\(cluster.dsn(database: database))"
                  calm:
                    dsn: "\(cluster.dsn(database: quiet))"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let exporter = try ExporterProcess([
                "--config.file", config, "--episodes.path", path, "--log.format", "json", "--sample.interval", "250ms"])
            let incident = try Incident(cluster: cluster, readers: 0, database: database)
            defer { incident.end() }
            Thread.sleep(forTimeInterval: 1.5)
            incident.holder.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            let busy = try Exposition(parsing: try exporter.get("/probe?target=busy").body)
            let calm = try Exposition(parsing: try exporter.get("/probe?target=calm").body)
            #expect(busy.value("pg_blocking_episodes_total", ["datname": database]) == 1)
            #expect(busy.value("pg_blocking_episodes_ended_total", ["datname": database, "end": "released"]) == 1)
            #expect(calm.value("pg_blocking_episodes_total", ["datname": database]) == 1)
            #expect(calm.value("pg_blocking_episodes_total", ["datname": quiet]) == 0)
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.map(\.target).sorted() == ["busy", "calm"])
            #expect(episodes.map(\.root.pid) == [incident.holderPID, incident.holderPID])
            #expect(Set(episodes.map(\.id)).count == 2)
            #expect(episodes.map(\.end) == [.released, .released])
            // Each target derives started_at from its own samples (sent at - the wait's age).
            let apart = abs(Self.seconds(episodes[0].startedAt) - Self.seconds(episodes[1].startedAt))
            #expect(apart <= 0.05, "started_at of the two targets' records \(apart) s apart")
            print("multi-target: the two records' started_at \(apart) s apart")
            let logged = events(exporter.log)
            #expect(logged.filter { $0["target"] == "busy" }.map { $0["event"] } == ["blocking_episode_started", "blocking_episode_ended"])
            #expect(logged.filter { $0["target"] == "calm" }.map { $0["event"] } == ["blocking_episode_started", "blocking_episode_ended"])
        }

        /// A restart with a file store keeps the history; what a previous process left ongoing is
        /// ended `unobserved`; retention (age and count) prunes at start.
        @Test func fileStoreKeepsHistoryAndRetentionPrunes() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("restart")
            // One real episode with a first exporter.
            let first = try exporter(database, path: path, ["--sample.interval", "250ms"])
            let incident = try Incident(cluster: cluster, readers: 0, database: database)
            Thread.sleep(forTimeInterval: 1)
            incident.holder.send("COMMIT;")
            try waitUntilNothingWaits(database)
            Thread.sleep(forTimeInterval: 0.75)
            incident.end()
            let recorded = try stopAndRead(first, path: path, database: database)
            #expect(recorded.count == 1)

            // A second exporter on the same file: the history is there after it stopped.
            let second = try exporter(database, path: path, ["--sample.interval", "250ms"])
            #expect(try stopAndRead(second, path: path, database: database) == recorded)

            // Older and left-ongoing episodes, as another run would have left them.
            let now = Timestamp.now().secondsSinceEpoch
            func record(_ pid: Int32, ageSeconds: Double, length: Double?) -> EpisodeRecord {
                let root = EpisodeRecord.Root(pid: pid, usename: "app")
                let start = Timestamp(secondsSinceEpoch: now - ageSeconds)!
                return EpisodeRecord(
                    id: EpisodeRecord.id(target: "default", root: root, startedAt: start), target: "default", datname: database,
                    startedAt: start, endedAt: length.map { Timestamp(secondsSinceEpoch: now - ageSeconds + $0)! },
                    durationSeconds: length ?? 7, ongoing: length == nil, end: length == nil ? nil : .released, root: root,
                    peakBlocked: 1, blockedTotal: 1, maxDepth: 1, samples: 1)
            }
            let old = record(1, ageSeconds: 40 * 86400, length: 3)
            let leftOngoing = record(2, ageSeconds: 60, length: nil)
            let store = try EpisodeStore.open(path: path)
            try store.upsert(old)
            try store.upsert(leftOngoing)
            store.close()

            let third = try exporter(database, path: path, ["--episodes.retention", "30d", "--episodes.retention.count", "2"])
            let kept = try stopAndRead(third, path: path, database: database)
            #expect(kept.map(\.id) == [leftOngoing.id, recorded[0].id])
            #expect(kept.contains(where: { $0.id == old.id }) == false)
            let ended = try #require(kept.first { $0.id == leftOngoing.id })
            #expect(ended.ongoing == false)
            #expect(ended.end == .unobserved)
            #expect(ended.endedAt == Timestamp(secondsSinceEpoch: now - 60 + 7))
            #expect(third.log.contains("episodes left ongoing by a previous run ended as unobserved"))
            #expect(third.log.contains(#""deleted":"1""#), "\(third.log)")

            // --episodes.retention.count 1 keeps only the newest.
            let fourth = try exporter(database, path: path, ["--episodes.retention.count", "1"])
            let newest = try stopAndRead(fourth, path: path, database: database)
            #expect(newest.map(\.id) == [recorded[0].id])
        }

        /// A literal in the root's statement never reaches the store, the logs or the metrics
        /// under the default policy; neither does one cut off at `track_activity_query_size`.
        @Test func literalsNeverLeak() throws {
            let (directory, path) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let database = try cluster.createDatabase("literal")
            try execute(database, "CREATE TABLE accounts (email text)")
            #expect(try cluster.connect().execute("SHOW track_activity_query_size") { $0.string(0, 0) } == "1kB")
            let exporter = try exporter(database, path: path, ["--sample.interval", "250ms", "--episodes.log-after", "0s"])
            let dsn = cluster.dsn(database: database)
            let admin = try cluster.connect(database: database)
            // A statement cut at 1023 bytes inside a string constant.
            let secret = "SECRETTOKEN" + String(repeating: "s", count: 100)
            let head = "SELECT * FROM accounts WHERE email IS NULL"
            // The constant opens at byte 1011; pg_stat_activity keeps 1023 bytes.
            let cut = head + String(repeating: " ", count: 1000 - head.utf8.count) + "OR email = '\(secret)'"
            #expect(cut.utf8.count > 1024)
            var sessions: [PsqlSession] = []
            defer { sessions.forEach { $0.kill() } }
            var roots: [Int32] = []
            for (index, statement) in ["SELECT * FROM accounts WHERE email = 'a@b.c'", cut].enumerated() {
                let holder = try PsqlSession(dsn: dsn, applicationName: "holder\(index)")
                holder.send("BEGIN; \(statement);")
                roots += try Incident.waitFor(admin, "holder\(index)", state: "idle in transaction")
                let waiter = try PsqlSession(dsn: dsn, applicationName: "waiter\(index)")
                waiter.send("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;")
                _ = try Incident.waitFor(admin, "waiter\(index)", waitingOnLock: true)
                sessions += [holder, waiter]
                Thread.sleep(forTimeInterval: 0.75)
                holder.send("ROLLBACK;")
                try waitUntilNothingWaits(database)
                waiter.send("ROLLBACK;")
            }
            Thread.sleep(forTimeInterval: 0.75)
            let metrics = try exporter.get().body
            let episodes = try stopAndRead(exporter, path: path, database: database)
            #expect(episodes.map(\.root.pid) == roots)
            #expect(episodes.first?.root.query == "SELECT * FROM accounts WHERE email = $1")
            #expect(episodes.first?.root.queryFingerprint != nil)
            #expect(episodes.last?.root.queryReduced == true)
            #expect(episodes.last?.root.query?.hasSuffix("OR email =") == true, "\(episodes.last?.root.query ?? "nil")")
            // The store's bytes (the WAL is checkpointed into the file when the exporter closes it).
            let stored = try String(decoding: EpisodeStoreFixtures.bytes(path), as: UTF8.self)
            #expect(!stored.isEmpty)
            #expect(stored.contains("email = $1"))
            for leak in ["a@b.c", "SECRET"] {
                #expect(!stored.contains(leak), "the store holds \(leak)")
                #expect(!exporter.log.contains(leak), "the log holds \(leak)")
                #expect(!metrics.contains(leak), "the metrics hold \(leak)")
            }
            #expect(events(exporter.log).filter { $0["event"] == "blocking_episode_ended" }.count == 2)
            print("literal: cut statement stored as \(episodes.last?.root.query?.count ?? 0) characters, reduced")
        }

        /// Bad input: one line naming what is wrong, exit 2, and the file untouched.
        @Test func badEpisodeFlagsAreOneLine() throws {
            let (directory, _) = try storePath()
            defer { EpisodeStoreFixtures.remove(directory) }
            let damaged = directory + "/damaged.db"
            let garbage = [UInt8](repeating: 0x41, count: 8192)
            try EpisodeStoreFixtures.write(garbage, to: damaged)
            let cases: [([String], String)] = [
                (["--episodes.path", damaged], "Error: --episodes.path: episode store \(damaged): not an SQLite database"),
                (["--episodes.path", directory + "/missing/episodes.db"],
                 "Error: --episodes.path: episode store \(directory)/missing/episodes.db: directory \(directory)/missing: No such file or directory"),
                (["--episodes.path", directory], "Error: --episodes.path: episode store \(directory): not a regular file"),
                (["--episodes.query-text", "raw"], "Error: --episodes.query-text: must be normalized, full or none, not \"raw\""),
                (["--episodes.retention", "0s"], "Error: --episodes.retention: must be more than 0"),
                (["--episodes.retention", "forever"], "Error: --episodes.retention: invalid duration \"forever\": use a number with a unit, e.g. 500ms, 30s, 5m, 1h"),
                (["--episodes.retention.count", "0"], "Error: --episodes.retention.count: must be 1 or more"),
                (["--episodes.log-after", "1 s"], "Error: --episodes.log-after: invalid duration \"1 s\": use a number with a unit, e.g. 500ms, 30s, 5m, 1h"),
                (["--sample.interval", "10ms"], "Error: --sample.interval: must be 0 (off) or at least 50ms"),
            ]
            for (arguments, message) in cases {
                let exporter = try ExporterProcess(["serve", "--dsn", "host=/nonexistent"] + arguments, waitForListening: false)
                #expect(try exporter.waitForExit() == 2, "\(arguments)")
                #expect(exporter.log.split(separator: "\n").first.map(String.init) == message, "\(exporter.log)")
            }
            #expect(try EpisodeStoreFixtures.bytes(damaged) == garbage)
            #expect(try EpisodeStoreFixtures.entries(directory) == ["damaged.db"])

            // An unwritable file (immutable, so even root cannot write it): refused, unchanged.
            let locked = directory + "/locked.db"
            try EpisodeStore.open(path: locked).close()
            let before = try EpisodeStoreFixtures.bytes(locked)
            try EpisodeStoreFileTests.makeImmutable(locked, true)
            defer { try? EpisodeStoreFileTests.makeImmutable(locked, false) }
            let exporter = try ExporterProcess(["serve", "--dsn", "host=/nonexistent", "--episodes.path", locked], waitForListening: false)
            #expect(try exporter.waitForExit() == 2)
            #expect(exporter.log.split(separator: "\n").first.map(String.init)
                    == "Error: --episodes.path: episode store \(locked): not writable (the file is read-only)", "\(exporter.log)")
            #expect(try EpisodeStoreFixtures.bytes(locked) == before)

            // --sample.interval 0: no sampling, no store opened (the damaged file is not even read).
            let off = try ExporterProcess(["serve", "--dsn", "host=/nonexistent", "--sample.interval", "0", "--episodes.path", damaged])
            let metrics = try off.metrics()
            #expect(metrics.value("pg_lock_exporter_samples_total") == nil)
            #expect(metrics.value("pg_lock_exporter_episode_store_errors_total") == nil)
            #expect(try off.terminate() == 0)
        }
    }
}
