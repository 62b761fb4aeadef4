import Foundation

@testable import PGLockExporter

/// Records and files for the episode store tests: real SQLite files in a temporary directory of
/// their own, removed at the end.
enum EpisodeStoreFixtures {
    typealias Timestamp = EpisodeRecord.Timestamp

    /// 2026-12-04T15:13:39.123456Z.
    static let base = Timestamp(microsecondsSinceEpoch: 1_796_397_219_123_456)

    /// `base` plus `seconds`.
    static func at(_ seconds: Double) -> Timestamp {
        Timestamp(microsecondsSinceEpoch: base.microsecondsSinceEpoch + Int64((seconds * 1_000_000).rounded()))
    }

    /// The seed incident as a finished record, every field set.
    static func full() -> EpisodeRecord {
        let root = EpisodeRecord.Root(
            pid: 65365, backendStart: at(-3600), usename: "app", applicationName: "features-worker",
            clientAddr: "10.1.2.3", clientPort: 51234, backendType: "client backend", state: "idle in transaction",
            xactStart: at(-60), stateChange: at(-59.5), query: "SELECT * FROM features LIMIT $1",
            queryFingerprint: "0e2c1e4b4d8f7a21", queryReduced: false, gid: nil)
        return EpisodeRecord(
            id: EpisodeRecord.id(target: "prod", root: root, startedAt: at(0)), target: "prod", datname: "app",
            startedAt: at(0), endedAt: at(4.25), durationSeconds: 4.25, ongoing: false, end: .rootEnded,
            endCause: "terminated by pg_lock_exporter remediate", root: root,
            lock: EpisodeRecord.Lock(locktype: "relation", mode: "AccessExclusiveLock", relation: "features"),
            peakBlocked: 3, blockedTotal: 3, maxDepth: 2, maxWaitSeconds: 4.25, waiterSeconds: 11.5, samples: 5,
            waiters: [
                EpisodeRecord.Waiter(
                    pid: 77970, usename: "deploy", applicationName: "alembic", mode: "AccessExclusiveLock",
                    relation: "features", query: "ALTER TABLE features ADD COLUMN x int", waitedSeconds: 4.25, isMigrate: true),
                EpisodeRecord.Waiter(
                    pid: 79250, usename: "app", applicationName: "web", mode: "AccessShareLock", relation: "features",
                    query: "SELECT * FROM features WHERE id = $1", waitedSeconds: 3.75),
                EpisodeRecord.Waiter(pid: 79251, waitedSeconds: 3.5),
            ],
            guardTimeouts: EpisodeRecord.GuardTimeouts(idleInTransactionSessionTimeout: 0, transactionTimeout: 300))
    }

    /// A small record: root `pid` in `target`/`datname`, started `start` seconds after `base`,
    /// ended `length` seconds later (nil: ongoing).
    static func record(
        pid: Int32, target: String = "prod", datname: String = "app", start: Double, length: Double? = 1
    ) -> EpisodeRecord {
        let root = EpisodeRecord.Root(pid: pid, backendStart: at(-100), usename: "app")
        return EpisodeRecord(
            id: EpisodeRecord.id(target: target, root: root, startedAt: at(start)), target: target, datname: datname,
            startedAt: at(start), endedAt: length.map { at(start + $0) }, durationSeconds: length ?? 0,
            ongoing: length == nil, end: length == nil ? nil : .released, root: root, peakBlocked: 1,
            blockedTotal: 1, maxDepth: 1, samples: 1)
    }

    /// A new empty directory, removed by `remove`.
    static func directory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "episode-store-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        return String(cString: made)
    }

    static func remove(_ directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func entries(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }
}
