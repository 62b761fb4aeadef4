import CSQLite
import Foundation
import Synchronization
import Testing

@testable import PGLockExporter

/// `EpisodeStore` on real SQLite files (a temporary directory per test) and in memory: writing,
/// reading with filters, retention, restarts, several threads.
@Suite struct EpisodeStoreTests {
    typealias F = EpisodeStoreFixtures

    /// Runs `body` with a new store file in a new directory, removed afterwards.
    static func withStoreFile<T>(_ body: (String, String) throws -> T) throws -> T {
        let directory = try F.directory()
        defer { F.remove(directory) }
        return try body(directory, directory + "/episodes.db")
    }

    @Test func fullRecordRoundTrips() throws {
        try Self.withStoreFile { _, path in
            let store = try EpisodeStore.open(path: path)
            let record = F.full()
            try store.upsert(record)
            #expect(try store.episode(id: record.id) == record)
            #expect(try store.episodes() == [record])
            #expect(try store.episode(id: "0000000000000000") == nil)
        }
    }

    /// Six episodes over two targets and two databases, two of them ongoing.
    static let six = [
        F.record(pid: 1, target: "prod", datname: "app", start: 0),
        F.record(pid: 2, target: "prod", datname: "billing", start: 10, length: 5),
        F.record(pid: 3, target: "staging", datname: "app", start: 20, length: nil),
        F.record(pid: 4, target: "prod", datname: "app", start: 30, length: 100),
        F.record(pid: 5, target: "staging", datname: "billing", start: 40),
        F.record(pid: 6, target: "prod", datname: "app", start: 50, length: nil),
    ]

    @Test func filtersAndNewestFirst() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        for record in Self.six.shuffled() { try store.upsert(record) }
        func pids(_ records: [EpisodeRecord]) -> [Int32] { records.compactMap(\.root.pid) }
        #expect(pids(try store.episodes()) == [6, 5, 4, 3, 2, 1])
        #expect(pids(try store.episodes(datname: "app")) == [6, 4, 3, 1])
        #expect(pids(try store.episodes(target: "staging")) == [5, 3])
        #expect(pids(try store.episodes(ongoing: true)) == [6, 3])
        #expect(pids(try store.episodes(ongoing: false)) == [5, 4, 2, 1])
        #expect(pids(try store.episodes(datname: "app", target: "prod", ongoing: false)) == [4, 1])
        // since: what went on at or after it. At 16 s: 2 ended at 15 s, 1 at 1 s; 4 ended at 130 s.
        #expect(pids(try store.episodes(since: F.at(16))) == [6, 5, 4, 3])
        #expect(pids(try store.episodes(since: F.at(15))) == [6, 5, 4, 3, 2])
        #expect(pids(try store.episodes(since: F.at(131))) == [6, 3])
        #expect(pids(try store.episodes(since: F.at(16), datname: "billing")) == [5])
        #expect(pids(try store.episodes(datname: "nowhere")) == [])
        // A value that looks like SQL is a value.
        #expect(pids(try store.episodes(datname: "app' OR '1'='1")) == [])
    }

    @Test func limit() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        for record in Self.six { try store.upsert(record) }
        #expect(try store.episodes(limit: 2).compactMap(\.root.pid) == [6, 5])
        #expect(try store.episodes(datname: "app", limit: 3).compactMap(\.root.pid) == [6, 4, 3])
        #expect(try store.episodes(limit: 0) == [])
        #expect(try store.episodes(limit: -5) == [])
        #expect(try store.episodes(limit: 1000).count == 6)
    }

    /// An ongoing episode is written at every sample and a last time when it ends: one row, the
    /// last version.
    @Test func ongoingEpisodeUpdatedThenEnded() throws {
        try Self.withStoreFile { _, path in
            let store = try EpisodeStore.open(path: path)
            var record = F.record(pid: 42, start: 0, length: nil)
            try store.upsert(record)
            #expect(try store.episodes(ongoing: true).map(\.id) == [record.id])
            for sample in 2...5 {
                record.samples = sample
                record.peakBlocked = sample
                record.durationSeconds = Double(sample)
                try store.upsert(record)
            }
            #expect(try store.count() == 1)
            #expect(try store.episode(id: record.id)?.samples == 5)
            record.ongoing = false
            record.end = .waitersGone
            record.endedAt = F.at(5)
            try store.upsert(record)
            #expect(try store.count() == 1)
            #expect(try store.episode(id: record.id) == record)
            #expect(try store.episodes(ongoing: true) == [])
            #expect(try store.episodes(ongoing: false) == [record])
            #expect(try store.episodes(since: F.at(5)) == [record])
            #expect(try store.episodes(since: F.at(5.000001)) == [])
        }
    }

    @Test func retentionByAge() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        for record in Self.six { try store.upsert(record) }
        #expect(try store.prune(olderThan: F.at(20), keepAtMost: nil) == 2)
        #expect(try store.episodes().compactMap(\.root.pid) == [6, 5, 4, 3])
        #expect(try store.prune(olderThan: F.at(20), keepAtMost: nil) == 0)
        #expect(try store.prune(olderThan: nil, keepAtMost: nil) == 0)
        #expect(try store.count() == 4)
    }

    @Test func retentionByCount() throws {
        let store = try EpisodeStore.open(path: ":memory:")
        for record in Self.six { try store.upsert(record) }
        #expect(try store.prune(olderThan: nil, keepAtMost: 4) == 2)
        #expect(try store.episodes().compactMap(\.root.pid) == [6, 5, 4, 3])
        #expect(try store.prune(olderThan: F.at(45), keepAtMost: 3) == 3)
        #expect(try store.episodes().compactMap(\.root.pid) == [6])
        #expect(try store.prune(olderThan: nil, keepAtMost: 0) == 1)
        #expect(try store.count() == 0)
    }

    @Test func restartKeepsHistory() throws {
        try Self.withStoreFile { directory, path in
            do {
                let store = try EpisodeStore.open(path: path)
                for record in Self.six { try store.upsert(record) }
                store.close()
                #expect(throws: EpisodeStore.Error(description: "episode store \(path): closed")) { try store.count() }
            }
            // Closed: the WAL was checkpointed into the file and removed.
            #expect(try F.entries(directory) == ["episodes.db"])
            do {
                let store = try EpisodeStore.open(path: path)
                #expect(try store.episodes() == Self.six.reversed())
                try store.upsert(F.full())
                // Dropped without close: the same.
            }
            let store = try EpisodeStore.open(path: path)
            #expect(try store.count() == 7)
            #expect(try store.episode(id: F.full().id) == F.full())
        }
    }

    @Test func memoryStartsEmpty() throws {
        let first = try EpisodeStore.open(path: ":memory:")
        try first.upsert(F.full())
        #expect(try first.count() == 1)
        let second = try EpisodeStore.open(path: ":memory:")
        #expect(try second.count() == 0)
        #expect(try second.episodes() == [])
    }

    /// A file is in WAL mode while open (readers never block the writer), with the schema version
    /// and application id set.
    @Test func fileIsWALWithVersion() throws {
        try Self.withStoreFile { directory, path in
            let store = try EpisodeStore.open(path: path)
            try store.upsert(F.full())
            #expect(try F.entries(directory) == ["episodes.db", "episodes.db-shm", "episodes.db-wal"])
            let reader = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READONLY)
            #expect(try reader.query("PRAGMA journal_mode").first?.first == .text("wal"))
            #expect(try reader.query("PRAGMA user_version").first?.first == .integer(1))
            #expect(try reader.query("PRAGMA application_id").first?.first == .integer(0x504C_5845))
            #expect(try reader.query("SELECT count(*) FROM episodes").first?.first == .integer(1))
        }
    }

    /// Several threads, two connections to one file (two stores, as two processes would be):
    /// writers each upsert their own episodes again and again while readers list; afterwards every
    /// episode is there once, in its last version, and the file passes `integrity_check`.
    @Test func concurrentWritersAndReadersDoNotCorrupt() throws {
        try Self.withStoreFile { _, path in
            let stores = [try EpisodeStore.open(path: path), try EpisodeStore.open(path: path)]
            let writers = 4, perWriter = 25, versions = 4
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: writers + 2) { worker in
                let store = stores[worker % 2]
                do {
                    if worker < writers {
                        for version in 1...versions {
                            for index in 0..<perWriter {
                                var record = F.record(pid: Int32(worker * 1000 + index), target: "t\(worker)", start: Double(index), length: nil)
                                record.samples = version
                                if version == versions { record.ongoing = false; record.end = .released; record.endedAt = F.at(Double(index) + 1) }
                                try store.upsert(record)
                            }
                        }
                    } else {
                        for _ in 0..<40 {
                            let listed = try store.episodes(limit: 1000)
                            if Set(listed.map(\.id)).count != listed.count { failures.withLock { $0.append("duplicate ids") } }
                        }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            for store in stores { store.close() }
            let store = try EpisodeStore.open(path: path)  // passes the inspection (integrity_check)
            let all = try store.episodes(limit: 1000)
            #expect(all.count == writers * perWriter)
            #expect(all.allSatisfy { $0.samples == versions && !$0.ongoing })
            #expect(try store.episodes(ongoing: true) == [])
        }
    }
}
