import CSQLite
import Foundation
import Testing

@testable import PGLockExporter

/// `EpisodeStoreWriter` on real SQLite files: a store that another process keeps locked (a
/// stand-in for a slow or stalled disk) never stalls the sampler that submits records; failures
/// are counted and logged once per kind; versions of one episode coalesce; the queue is bounded.
@Suite struct EpisodeStoreWriterTests {
    typealias F = EpisodeStoreFixtures

    /// Another connection to the file that holds its write lock until `release`.
    final class Locker {
        let database: SQLiteDatabase
        init(_ path: String) throws {
            database = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READWRITE)
            try database.execute("BEGIN IMMEDIATE")
        }
        func release() throws { try database.execute("ROLLBACK") }
    }

    static func elapsed(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).seconds
    }

    /// Without the writer a sample that writes its record waits out the lock (the harm); with it,
    /// submitting takes microseconds, the failure is counted once per record and logged once.
    @Test func aLockedStoreNeverStallsTheSampler() throws {
        let directory = try F.directory()
        defer { F.remove(directory) }
        let path = directory + "/episodes.db"
        let store = try EpisodeStore.open(path: path, busyTimeout: .milliseconds(500))
        let locker = try Locker(path)

        // The harm: writing in the sampler's thread blocks it for the whole busy timeout.
        var direct: Result<Void, EpisodeStore.Error> = .success(())
        let directSeconds = Self.elapsed { direct = Result { () throws(EpisodeStore.Error) in try store.upsert(F.record(pid: 1, start: 0)) } }
        #expect(directSeconds >= 0.5, "a direct write waited \(directSeconds) s")
        #expect(throws: EpisodeStore.Error(description: "episode store \(path): database is locked")) { try direct.get() }

        let log = RecordingLog()
        let writer = EpisodeStoreWriter(store: store, retention: .init(maximumAge: nil, maximumCount: nil), logger: log.logger)
        let submitSeconds = Self.elapsed {
            for pid: Int32 in 1...3 { writer.submit(F.record(pid: pid, start: Double(pid))) }
        }
        #expect(submitSeconds < 0.05, "three submits took \(submitSeconds) s")
        try eventually("three failed writes", timeout: 10) { writer.errorCount == 3 }
        #expect(writer.writtenCount == 0)
        #expect(log.all.map(\.message)
                == ["cannot write episode store (logged once per kind; pg_lock_exporter_episode_store_errors_total counts each)"])
        #expect(log.all.first?.metadata["error"] == "episode store \(path): database is locked")
        var w = ExpositionWriter()
        writer.write(into: &w)
        #expect(try Exposition(parsing: String(decoding: w.bytes, as: UTF8.self)).value("pg_lock_exporter_episode_store_errors_total") == 3)

        // Once the disk is back, the next records are written.
        try locker.release()
        writer.submit(F.record(pid: 4, start: 4))
        #expect(writer.close(waitingAtMost: .seconds(5)))
        #expect(writer.writtenCount == 1)
        #expect(try store.episodes().map(\.root.pid) == [4])
        print("writer: direct write under a lock \(directSeconds) s, three submits \(submitSeconds * 1000) ms")
    }

    /// Many versions of one episode submitted while the writer is stuck take one slot and end
    /// as the last version.
    @Test func versionsOfOneEpisodeCoalesce() throws {
        let directory = try F.directory()
        defer { F.remove(directory) }
        let path = directory + "/episodes.db"
        let store = try EpisodeStore.open(path: path, busyTimeout: .seconds(10))
        let locker = try Locker(path)
        let writer = EpisodeStoreWriter(store: store, retention: .init(maximumAge: nil, maximumCount: nil), logger: RecordingLog().logger)
        var record = F.record(pid: 7, start: 0, length: nil)
        writer.submit(record)
        try eventually("the writer to take the first version") { writer.pendingCount == 0 }
        for sample in 1...1000 {
            record.samples = sample
            writer.submit(record)
        }
        #expect(writer.pendingCount == 1)
        try locker.release()
        #expect(writer.close(waitingAtMost: .seconds(15)))
        #expect(writer.writtenCount == 2)
        #expect(writer.errorCount == 0)
        #expect(try store.episodes().map(\.samples) == [1000])
    }

    /// At most `maximumPending` distinct episodes wait; one more is dropped and counted.
    @Test func theQueueIsBounded() throws {
        let directory = try F.directory()
        defer { F.remove(directory) }
        let path = directory + "/episodes.db"
        let store = try EpisodeStore.open(path: path, busyTimeout: .seconds(20))
        let locker = try Locker(path)
        let log = RecordingLog()
        let writer = EpisodeStoreWriter(store: store, retention: .init(maximumAge: nil, maximumCount: nil), logger: log.logger)
        writer.submit(F.record(pid: 0, start: 0))
        try eventually("the writer to take the first record") { writer.pendingCount == 0 }
        for pid in 1...Int32(EpisodeStoreWriter.maximumPending + 1) { writer.submit(F.record(pid: pid, start: Double(pid))) }
        #expect(writer.pendingCount == EpisodeStoreWriter.maximumPending)
        #expect(writer.errorCount == 1)
        #expect(log.all.first?.metadata["error"]?.hasSuffix("write queue full or closed, episode \(F.record(pid: Int32(EpisodeStoreWriter.maximumPending + 1), start: Double(EpisodeStoreWriter.maximumPending + 1)).id) not written") == true)
        try locker.release()
        #expect(writer.close(waitingAtMost: .seconds(30)))
        #expect(try store.count() == EpisodeStoreWriter.maximumPending + 1)
    }

    /// Retention runs when the writer starts.
    @Test func retentionPrunesAtStart() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        for pid: Int32 in 1...5 { try store.upsert(F.record(pid: pid, start: Double(pid))) }
        let writer = EpisodeStoreWriter(store: store, retention: .init(maximumAge: nil, maximumCount: 2), logger: RecordingLog().logger)
        try eventually("retention to run") { try store.count() == 2 }
        #expect(try store.episodes().map(\.root.pid) == [5, 4])
        #expect(writer.close(waitingAtMost: .seconds(5)))
    }

    /// What a previous process left ongoing ends `unobserved` at the last sample it wrote.
    @Test func leftOngoingEpisodesEndUnobserved() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        var ongoing = F.record(pid: 1, start: 10, length: nil)
        ongoing.durationSeconds = 4.5
        try store.upsert(ongoing)
        try store.upsert(F.record(pid: 2, start: 20))
        #expect(try EpisodeStoreWriter.endLeftOngoing(in: store) == 1)
        let ended = try #require(try store.episode(id: ongoing.id))
        #expect(ended.ongoing == false)
        #expect(ended.end == .unobserved)
        #expect(ended.endedAt == F.at(14.5))
        #expect(try store.episodes(ongoing: true).isEmpty)
        #expect(try EpisodeStoreWriter.endLeftOngoing(in: store) == 0)
    }
}
