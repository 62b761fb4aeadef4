import PGLockExporter

#if canImport(Glibc)
import Glibc
#endif

/// `EpisodeStore.open` on a file holding the input (`--episodes.path` naming a file someone else
/// wrote, or one damaged on disk). For any bytes it either:
/// - refuses with one line, and the file's bytes are exactly the input still; or
/// - opens a working store: an episode written is read back equal, the store lists and prunes
///   (a row it cannot decode may fail a read, with one line), and it closes.
/// A crash, a trap or a hang (libFuzzer's 10 s) breaks the target.
enum EpisodeStoreFileTarget {
    /// A directory of this process's own, reused for every input, removed when libFuzzer exits.
    static let directory: String = {
        var template = Array("/tmp/pg_lock_exporter_fuzz_store_XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
        atexit { EpisodeStoreFileTarget.removeFiles(directoryToo: true) }
        return String(cString: made)
    }()

    static func removeFiles(directoryToo: Bool = false) {
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(directory + "/episodes.db" + suffix) }
        if directoryToo { rmdir(directory) }
    }

    static let record: EpisodeRecord = {
        let root = EpisodeRecord.Root(pid: 65365, backendStart: .init(microsecondsSinceEpoch: 1), query: "SELECT $1")
        let start = EpisodeRecord.Timestamp(microsecondsSinceEpoch: 1_796_397_219_123_456)
        return EpisodeRecord(
            id: EpisodeRecord.id(target: "fuzz", root: root, startedAt: start), target: "fuzz", datname: "app",
            startedAt: start, root: root, peakBlocked: 1, blockedTotal: 1, maxDepth: 1, samples: 1,
            waiters: [EpisodeRecord.Waiter(pid: 2, waitedSeconds: 0.5)])
    }()

    static let target = FuzzTarget(name: "episode-store-file") { bytes in
        let path = directory + "/episodes.db"
        removeFiles()
        write(bytes, to: path)
        do throws(EpisodeStore.Error) {
            let store = try EpisodeStore.open(path: path, busyTimeout: .milliseconds(100))
            do throws(EpisodeStore.Error) {
                try store.upsert(record)
                let readBack = try store.episode(id: record.id)
                FuzzCheck.require(readBack == record, "the written episode did not read back")
            } catch {
                FuzzCheck.require(false, "an opened store could not write and read an episode: \(error)")
            }
            do throws(EpisodeStore.Error) {
                _ = try store.episodes(limit: 50)
                try store.prune(olderThan: nil, keepAtMost: 1000)
            } catch {
                FuzzCheck.oneLine(error.description, "episode store")
            }
            store.close()
        } catch {
            FuzzCheck.oneLine(error.description, "episode store")
            FuzzCheck.require(read(path) == bytes, "a refused file was changed: \(error)")
        }
    }

    static func write(_ bytes: [UInt8], to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        FuzzCheck.require(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        FuzzCheck.require(written == bytes.count, "short write to \(path)")
    }

    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return count == 0 ? out : nil }
            out += buffer[0..<count]
        }
    }
}
