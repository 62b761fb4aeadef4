import CSQLite
import Foundation
import Testing

@testable import PGLockExporter

/// `EpisodeStore.open` on files that must not be written: refused with one line, and the file's
/// bytes (and the directory's entries) exactly as they were. And paths it cannot write.
@Suite struct EpisodeStoreFileTests {
    typealias F = EpisodeStoreFixtures

    /// Opens `path` expecting a refusal; checks it is one line, that the file and its directory
    /// are unchanged, and returns the line.
    static func refusal(_ path: String, directory: String) throws -> String {
        let before = try F.bytes(path), entries = try F.entries(directory)
        let line = try #require(openError(path), "opened \(path)")
        #expect(!line.contains { $0.isNewline })
        #expect(try F.bytes(path) == before, "the refused file was changed")
        // A read-only look at a WAL-mode file may leave an empty -shm/-wal beside it; never
        // anything else.
        #expect(try F.entries(directory).filter { !$0.hasSuffix("-shm") && !$0.hasSuffix("-wal") } == entries)
        return line
    }

    /// The line `open` refuses `path` with; nil when it opens.
    static func openError(_ path: String) -> String? {
        do throws(EpisodeStore.Error) {
            _ = try EpisodeStore.open(path: path)
            return nil
        } catch {
            return error.description
        }
    }

    static func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let directory = try F.directory()
        defer { F.remove(directory) }
        return try body(directory)
    }

    /// A store of `count` records, closed: a real SQLite file of many pages.
    static func realStore(_ path: String, count: Int = 300) throws {
        let store = try EpisodeStore.open(path: path)
        for index in 0..<count {
            var record = F.full()
            record.id = String(index)
            record.startedAt = F.at(Double(index))
            try store.upsert(record)
        }
        store.close()
    }

    @Test func garbageIsRefusedAndLeftAsItWas() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            var generator = SystemRandomNumberGenerator()
            try F.write((0..<9000).map { _ in UInt8.random(in: 0...255, using: &generator) }, to: path)
            #expect(try Self.refusal(path, directory: directory) == "episode store \(path): not an SQLite database")
            try F.write(Array("host=db dbname=app\n".utf8), to: path)
            #expect(try Self.refusal(path, directory: directory) == "episode store \(path): not an SQLite database")
        }
    }

    @Test func truncatedDatabaseIsRefusedAndLeftAsItWas() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            try Self.realStore(path)
            let whole = try F.bytes(path)
            #expect(whole.count > 100 * 4096)
            try F.write(Array(whole.prefix(whole.count / 2)), to: path)
            let line = try Self.refusal(path, directory: directory)
            #expect(line.hasPrefix("episode store \(path): damaged ("), "\(line)")
        }
    }

    /// A page in the middle overwritten: `integrity_check` finds it.
    @Test func damagedPageIsRefusedAndLeftAsItWas() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            try Self.realStore(path)
            var bytes = try F.bytes(path)
            for offset in (bytes.count / 2)..<(bytes.count / 2 + 4096) { bytes[offset] = 0x5A }
            try F.write(bytes, to: path)
            let line = try Self.refusal(path, directory: directory)
            #expect(line.hasPrefix("episode store \(path): damaged ("), "\(line)")
        }
    }

    /// Found by the episode-store-file fuzz target
    /// (Fuzz/corpus/episode-store-file/regression-index-missing-rows): a store whose pages are
    /// each sound but whose indexes miss rows of the table passes `quick_check`, and the first
    /// write failed with "database disk image is malformed". `integrity_check` finds it.
    @Test func indexMissingRowsIsRefused() throws {
        try Self.withDirectory { directory in
            let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/episode-store-file/regression-index-missing-rows")
            let path = directory + "/episodes.db"
            try F.write(try F.bytes(seed.path), to: path)
            #expect(try Self.refusal(path, directory: directory)
                == "episode store \(path): damaged (integrity_check: row 1 missing from index episodes_by_start)")
        }
    }

    @Test func anotherProgramsDatabaseIsRefused() throws {
        try Self.withDirectory { directory in
            let path = directory + "/app.db"
            do {
                let other = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
                try other.execute("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('a')")
            }
            #expect(try Self.refusal(path, directory: directory)
                == "episode store \(path): not an episode store (an SQLite database of another program, application_id 0)")
        }
    }

    @Test func newerSchemaIsRefused() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            try Self.realStore(path, count: 3)
            do {
                let database = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READWRITE)
                try database.execute("PRAGMA user_version = 2")
            }
            #expect(try Self.refusal(path, directory: directory)
                == "episode store \(path): written by a newer pg_lock_exporter (schema version 2, this one knows up to 1)")
        }
    }

    /// A store with something added to its schema: a trigger that a write would run (here one
    /// that deletes every episode), a changed table.
    @Test func storeWithChangedSchemaIsRefused() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            for change in [
                "CREATE TRIGGER forget AFTER INSERT ON episodes BEGIN DELETE FROM episodes; END",
                "ALTER TABLE episodes ADD COLUMN note TEXT",
                "DROP INDEX episodes_by_start",
            ] {
                try? FileManager.default.removeItem(atPath: path)
                try Self.realStore(path, count: 3)
                do {
                    let database = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READWRITE)
                    try database.execute(change)
                }
                #expect(try Self.refusal(path, directory: directory)
                    == "episode store \(path): not an episode store of schema version 1 (its tables differ)", "\(change)")
            }
        }
    }

    /// An empty file, and an SQLite database with nothing in it, become stores.
    @Test func emptyFilesBecomeStores() throws {
        try Self.withDirectory { directory in
            let empty = directory + "/empty.db", blank = directory + "/blank.db"
            try F.write([], to: empty)
            do {
                let database = try SQLiteDatabase.open(path: blank, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
                try database.execute("CREATE TABLE x (y); DROP TABLE x")
            }
            #expect(try F.bytes(blank).count > 0)
            for path in [empty, blank] {
                let store = try EpisodeStore.open(path: path)
                try store.upsert(F.full())
                store.close()
                #expect(try EpisodeStore.open(path: path).episodes() == [F.full()])
            }
        }
    }

    @Test func pathsThatCannotBeAStore() throws {
        try Self.withDirectory { directory in
            #expect(throws: EpisodeStore.Error(description: "episode store: no path given")) {
                try EpisodeStore.open(path: "")
            }
            #expect(throws: EpisodeStore.Error(description: "episode store \(directory): not a regular file")) {
                try EpisodeStore.open(path: directory)
            }
            let missing = directory + "/missing/episodes.db"
            #expect(throws: EpisodeStore.Error(description: "episode store \(missing): directory \(directory)/missing: No such file or directory")) {
                try EpisodeStore.open(path: missing)
            }
            let file = directory + "/file"
            try F.write([], to: file)
            #expect(throws: EpisodeStore.Error(description: "episode store \(file)/episodes.db: directory \(file): Not a directory")) {
                try EpisodeStore.open(path: file + "/episodes.db")
            }
            #expect(try F.entries(directory) == ["file"])
        }
    }

    /// Makes `path` unwritable even for root: mode bits alone do not stop root, the immutable
    /// attribute does (`chattr +i`, ext4 and most local file systems).
    static func makeImmutable(_ path: String, _ on: Bool) throws {
        chmod(path, on ? 0o555 : 0o755)
        if geteuid() == 0 {
            let result = try Shell.run(["chattr", on ? "+i" : "-i", path], timeout: 10)
            guard result.status == 0 else { throw TestFailure("chattr: \(result.output)") }
        }
    }

    /// A new store in a directory it cannot write, and an existing store whose directory became
    /// unwritable (WAL mode needs its -wal and -shm files beside it): one line each, at open.
    @Test func unwritableDirectoryIsOneLine() throws {
        try Self.withDirectory { directory in
            let locked = directory + "/locked"
            mkdir(locked, 0o755)
            let existing = locked + "/episodes.db"
            try Self.realStore(existing, count: 3)
            try Self.makeImmutable(locked, true)
            defer { try? Self.makeImmutable(locked, false) }
            // The test needs a directory this process cannot write.
            #expect(open(locked + "/probe", O_WRONLY | O_CREAT, 0o644) == -1)
            let fresh = locked + "/new.db"
            let reason = String(cString: strerror(geteuid() == 0 ? EPERM : EACCES))
            #expect(throws: EpisodeStore.Error(description: "episode store \(fresh): directory \(locked) is not writable: \(reason)")) {
                try EpisodeStore.open(path: fresh)
            }
            let before = try F.bytes(existing)
            #expect(throws: EpisodeStore.Error(description: "episode store \(existing): directory \(locked) is not writable: \(reason)")) {
                try EpisodeStore.open(path: existing)
            }
            #expect(try F.bytes(existing) == before)
            #expect(try F.entries(locked) == ["episodes.db"])
        }
    }

    /// A store file the process cannot write (its directory can be written).
    @Test func unwritableFileIsOneLine() throws {
        try Self.withDirectory { directory in
            let path = directory + "/episodes.db"
            try Self.realStore(path, count: 3)
            try Self.makeImmutable(path, true)
            defer { try? Self.makeImmutable(path, false) }
            #expect(open(path, O_WRONLY) == -1)
            let before = try F.bytes(path)
            #expect(throws: EpisodeStore.Error(description: "episode store \(path): not writable (the file is read-only)")) {
                try EpisodeStore.open(path: path)
            }
            #expect(try F.bytes(path) == before)
        }
    }
}
