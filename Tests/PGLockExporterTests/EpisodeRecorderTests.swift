import Foundation
import Logging
import Synchronization
import Testing

@testable import PGLockExporter

/// Collects log entries (message and metadata) for the tests.
final class RecordingLog: Sendable {
    let entries = Mutex<[(message: String, metadata: [String: String])]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    var all: [(message: String, metadata: [String: String])] { entries.withLock { $0 } }

    struct Handler: LogHandler {
        let log: RecordingLog
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
            log.entries.withLock { $0.append(("\(event.message)", merged)) }
        }
    }
}

/// `EpisodeRecorder`'s own decisions on synthetic samples: when an episode is logged, what its
/// metrics say, that `stop` ends what is ongoing and that later samples are ignored.
@Suite struct EpisodeRecorderTests {
    typealias Timestamp = EpisodeRecord.Timestamp
    static let t0 = EpisodeStoreFixtures.base

    static func at(_ seconds: Double) -> Timestamp { EpisodeStoreFixtures.at(seconds) }

    /// Root 10 idle in transaction, and (when `waited` is given) 11 waiting behind it for that long.
    static func snapshot(waited: Double?, rootStateChange: String = "2026-12-04 08:00:01+00") -> ActivitySnapshot {
        var sessions = [Session.fixture(pid: 10, state: "idle in transaction", transactionSeconds: 5, stateChange: rootStateChange)]
        // A root whose state changed committed: its transaction ended (the tracker compares xact_start).
        sessions[0].transactionStart = rootStateChange == "2026-12-04 08:00:01+00" ? "2026-12-04 08:00:00+00" : nil
        if let waited {
            sessions.append(.fixture(
                pid: 11, state: "active", waitingOnLock: true, blockedBy: [10], lockWaitSeconds: waited,
                backendStart: "2026-12-04 08:00:02+00"))
        }
        return ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [DatabaseStats(datname: "app")],
            settings: ServerSettings(versionString: "", maxConnections: 0, timeouts: [:]))
    }

    func recorder(logAfter: TimeSpan, log: RecordingLog, store: EpisodeStore) -> EpisodeRecorder {
        EpisodeRecorder(
            settings: EpisodeSettings(target: "prod", queryText: .normalized, logAfter: logAfter, store: store, logger: log.logger),
            logger: log.logger)
    }

    func metrics(_ recorder: EpisodeRecorder, known: [String] = ["app"]) throws -> Exposition {
        var w = ExpositionWriter()
        recorder.write(into: &w, known: known)
        return try Exposition(parsing: String(decoding: w.bytes, as: UTF8.self))
    }

    @Test func startIsLoggedOnceTheEpisodeHasLastedLogAfterAndItsEndAlways() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .seconds(1), log: log, store: store)
        #expect(!recorder.needsDetail)
        recorder.observe(Self.snapshot(waited: 0.5), sentAt: Self.t0)
        #expect(recorder.needsDetail)
        #expect(log.all.isEmpty)  // 0.5 s old: not yet
        recorder.observe(Self.snapshot(waited: 1.5), sentAt: Self.at(1))
        recorder.observe(Self.snapshot(waited: 2.5), sentAt: Self.at(2))
        #expect(log.all.map(\.message) == ["blocking episode started"])
        let started = try #require(log.all.first?.metadata)
        #expect(started["event"] == "blocking_episode_started")
        #expect(started["duration_seconds"] == "1.5")
        #expect(started["root_pid"] == "10")
        #expect(started["started_at"] == Self.at(-0.5).description)
        #expect(started["end"] == nil)
        let during = try metrics(recorder)
        #expect(during.value("pg_blocking_episodes_total", ["datname": "app"]) == 1)
        #expect(during.value("pg_blocking_episodes_ongoing", ["datname": "app"]) == 1)

        // The root committed (its state changed) and nobody waits any more.
        recorder.observe(Self.snapshot(waited: nil, rootStateChange: "2026-12-04 08:00:09+00"), sentAt: Self.at(3))
        #expect(!recorder.needsDetail)
        #expect(log.all.map(\.message) == ["blocking episode started", "blocking episode ended"])
        let ended = try #require(log.all.last?.metadata)
        #expect(ended["event"] == "blocking_episode_ended")
        #expect(ended["id"] == started["id"])
        #expect(ended["end"] == "released")
        #expect(ended["duration_seconds"] == "3.5")
        #expect(ended["ended_at"] == Self.at(3).description)
        let after = try metrics(recorder)
        #expect(after.value("pg_blocking_episodes_total", ["datname": "app"]) == 1)
        #expect(after.value("pg_blocking_episodes_ongoing", ["datname": "app"]) == 0)
        #expect(after.value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "released"]) == 1)
        #expect(after.value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "unobserved"]) == 0)
        #expect(after.value("pg_blocking_episode_duration_seconds_bucket", ["datname": "app", "le": "2"]) == 0)
        #expect(after.value("pg_blocking_episode_duration_seconds_bucket", ["datname": "app", "le": "5"]) == 1)
        #expect(after.value("pg_blocking_episode_duration_seconds_bucket", ["datname": "app", "le": "+Inf"]) == 1)
        #expect(after.value("pg_blocking_episode_duration_seconds_sum", ["datname": "app"]) == 3.5)
        #expect(after.value("pg_blocking_episode_duration_seconds_count", ["datname": "app"]) == 1)
        #expect(after.value("pg_lock_exporter_episode_store_errors_total") == 0)
        #expect(settingsWriterDrains(recorder))
        #expect(try store.count() == 1)
        #expect(try store.episodes().first?.end == .released)
    }

    @Test func episodeShorterThanLogAfterIsStoredAndCountedNotLogged() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .seconds(1), log: log, store: store)
        recorder.observe(Self.snapshot(waited: 0.2), sentAt: Self.t0)
        recorder.observe(Self.snapshot(waited: nil), sentAt: Self.at(0.5))
        #expect(log.all.isEmpty)
        #expect(try metrics(recorder).value("pg_blocking_episode_duration_seconds_bucket", ["datname": "app", "le": "1"]) == 1)
        #expect(settingsWriterDrains(recorder))
        #expect(try store.episodes().map(\.end) == [.waitersGone])
    }

    /// Began and ended between two samples, but lasted `--episodes.log-after`: its end is logged
    /// (its start never was).
    @Test func episodeSeenOnceButLongEnoughLogsItsEnd() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .seconds(2), log: log, store: store)
        recorder.observe(Self.snapshot(waited: 0.9), sentAt: Self.t0)
        recorder.observe(Self.snapshot(waited: nil), sentAt: Self.at(1.2))
        #expect(log.all.map(\.message) == ["blocking episode ended"])
        #expect(log.all.first?.metadata["duration_seconds"] == "2.1")
    }

    @Test func stopEndsOngoingEpisodesUnobservedAndLaterSamplesAreIgnored() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .zero, log: log, store: store)
        recorder.observe(Self.snapshot(waited: 3), sentAt: Self.t0)
        recorder.stop(at: Self.at(0.4))
        recorder.observe(Self.snapshot(waited: 4), sentAt: Self.at(1))
        #expect(log.all.map(\.message) == ["blocking episode started", "blocking episode ended"])
        #expect(log.all.last?.metadata["end"] == "unobserved")
        let exposition = try metrics(recorder)
        #expect(exposition.value("pg_blocking_episodes_total", ["datname": "app"]) == 1)
        #expect(exposition.value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "unobserved"]) == 1)
        #expect(exposition.value("pg_blocking_episodes_ongoing", ["datname": "app"]) == 0)
        #expect(!recorder.needsDetail)
        #expect(settingsWriterDrains(recorder))
        #expect(try store.episodes().map(\.end) == [.unobserved])
    }

    /// Known databases have every series at 0 before any episode.
    @Test func knownDatabasesAreZeroFilled() throws {
        let recorder = recorder(logAfter: .seconds(1), log: RecordingLog(), store: try EpisodeStore.open(path: ":memory:"))
        let exposition = try metrics(recorder, known: ["app", "billing"])
        for datname in ["app", "billing"] {
            #expect(exposition.value("pg_blocking_episodes_total", ["datname": datname]) == 0)
            #expect(exposition.value("pg_blocking_episodes_ongoing", ["datname": datname]) == 0)
            #expect(exposition.all("pg_blocking_episodes_ended_total", ["datname": datname]).count == 4)
            #expect(exposition.all("pg_blocking_episode_duration_seconds_bucket", ["datname": datname]).count == 12)
        }
        try expectPromtoolAccepts(exposition.text)
    }

    func settingsWriterDrains(_ recorder: EpisodeRecorder) -> Bool {
        recorder.settings.writer.close(waitingAtMost: .seconds(5))
    }
}

extension EpisodeRecorderTests {
    /// A sample that fails leaves the episode going on, blind: seen again within
    /// `EpisodeTracker.blindGrace` it simply goes on (one id, counted and logged once).
    @Test func episodeSeenAgainAfterALossOfSightGoesOn() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .seconds(1), log: log, store: store)
        recorder.observe(Self.snapshot(waited: 3), sentAt: Self.t0)
        recorder.lostSight(at: Self.at(1))
        #expect(recorder.needsDetail)
        recorder.observe(Self.snapshot(waited: 5), sentAt: Self.at(2))
        let exposition = try metrics(recorder)
        #expect(exposition.value("pg_blocking_episodes_total", ["datname": "app"]) == 1)
        #expect(exposition.value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "unobserved"]) == 0)
        #expect(exposition.value("pg_blocking_episodes_ongoing", ["datname": "app"]) == 1)
        #expect(log.all.map { $0.metadata["event"] ?? "" } == ["blocking_episode_started"])
        #expect(settingsWriterDrains(recorder))
        let stored = try store.episodes()
        #expect(stored.count == 1)
        #expect(stored.first?.ongoing == true)
        #expect(stored.first?.startedAt == Self.at(-3))
        #expect(stored.first?.samples == 2)
    }

    /// Blind for longer than the grace, or found over after a gap, it ends `unobserved` at the
    /// last sample that saw it.
    @Test func episodeBlindPastTheGraceEndsUnobserved() throws {
        let log = RecordingLog()
        let store = try EpisodeStore.open(path: ":memory:")
        let recorder = recorder(logAfter: .seconds(1), log: log, store: store)
        recorder.observe(Self.snapshot(waited: 3), sentAt: Self.t0)
        recorder.lostSight(at: Self.at(5))
        #expect(recorder.needsDetail)
        recorder.lostSight(at: Self.at(10))
        #expect(!recorder.needsDetail)
        let exposition = try metrics(recorder)
        #expect(exposition.value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "unobserved"]) == 1)
        #expect(log.all.map { $0.metadata["event"] ?? "" } == ["blocking_episode_started", "blocking_episode_ended"])
        #expect(settingsWriterDrains(recorder))
        let stored = try store.episodes()
        #expect(stored.first?.end == .unobserved)
        #expect(stored.first?.endedAt == Self.t0)

        let second = EpisodeRecorder(
            settings: EpisodeSettings(target: "prod", queryText: .normalized, logAfter: .seconds(1), store: store, logger: log.logger),
            logger: log.logger)
        second.observe(Self.snapshot(waited: 3), sentAt: Self.at(20))
        second.lostSight(at: Self.at(21))
        second.observe(Self.snapshot(waited: nil), sentAt: Self.at(22))
        #expect(try metrics(second).value("pg_blocking_episodes_ended_total", ["datname": "app", "end": "unobserved"]) == 1)
        #expect(second.settings.writer.close(waitingAtMost: .seconds(5)))
        #expect(try store.episodes(limit: 1).first?.endedAt == Self.at(20))
    }
}
