import CSQLite
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where blocking episodes are kept (`--episodes.path`): an SQLite database, `:memory:` or a file.
///
/// Each episode is one row: the fields the API filters on as columns (`target`, `datname`,
/// `started_at` and `ended_at` in microseconds since the epoch, `ongoing`) and the whole
/// `EpisodeRecord` as JSON, which is what readers get back. An ongoing episode is written again
/// (`upsert`, by its `id`) as samples come, and a last time when it ends.
///
/// Opening a file never harms what is there (`open(path:)`): a file that is not SQLite, is
/// damaged, belongs to another program or to a newer schema is refused with one line and left as
/// it was. Files use WAL mode, so readers (`pg_lock_exporter episodes --path`) never block the
/// writer; every wait for another process's lock ends after `busyTimeout`.
///
/// Thread rule: one connection, used under a `Mutex`: any number of threads may call any method;
/// they take turns.
public final class EpisodeStore: Sendable {
    /// One line: the path and what is wrong.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// The schema this build writes, in `PRAGMA user_version`. A later version that changes the
    /// schema raises it and migrates files of the versions before it in `open`; a file of a newer
    /// version than the build knows is refused.
    public static let schemaVersion: Int32 = 1

    /// `PRAGMA application_id` of a store ("PLXE"): tells an episode store from another
    /// program's SQLite file, which is refused rather than written into.
    public static let applicationID: Int32 = 0x504C_5845

    /// The longest wait for a lock held by another connection to the same file (a reader
    /// process, a second exporter) before an operation fails with "database is locked".
    public static let defaultBusyTimeout: Duration = .seconds(2)

    /// The path as given (`:memory:` for a store in memory).
    public let path: String
    private let database: Mutex<SQLiteDatabase?>

    private init(path: String, database: sending SQLiteDatabase) {
        self.path = path
        self.database = Mutex(database)
    }

    static let schema = """
        CREATE TABLE episodes (
            id TEXT PRIMARY KEY NOT NULL,
            target TEXT NOT NULL,
            datname TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            ongoing INTEGER NOT NULL,
            record TEXT NOT NULL
        ) STRICT;
        CREATE INDEX episodes_by_start ON episodes (started_at DESC, id DESC);
        """

    // MARK: Opening

    /// Opens the store at `path`: `:memory:` (empty, gone with the process), or a file, created
    /// when missing, kept across restarts.
    ///
    /// A file that exists is first inspected through a read-only connection, which cannot write
    /// it (nor checkpoint a write-ahead log into it): it must be an SQLite database that passes
    /// `PRAGMA integrity_check` and is either empty or an episode store (`applicationID`) of a schema
    /// version this build knows, with exactly the tables and indexes of that version (a changed
    /// column, a trigger or a view is refused too). Anything else is refused with one line and
    /// the file is not opened for writing. Only then is it opened read-write (never with
    /// `SQLITE_OPEN_CREATE`, so a file that vanished in between is not recreated) and switched to
    /// WAL mode. A missing file is created. Either way the store must take a write lock before
    /// `open` returns, so an unwritable file or directory is reported here, not at the first
    /// episode.
    ///
    /// `synchronous=NORMAL` (SQLite's advice for WAL): a commit survives the process crashing; a
    /// power loss can lose the last commits, never the file's consistency.
    public static func open(path: String, busyTimeout: Duration = defaultBusyTimeout) throws(Error) -> EpisodeStore {
        let milliseconds = busyMilliseconds(busyTimeout)
        if path == ":memory:" {
            do throws(SQLiteDatabase.Failure) {
                let database = try SQLiteDatabase.open(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
                try initialize(database)
                return EpisodeStore(path: path, database: database)
            } catch {
                throw Error(description: "episode store :memory:: \(error.message)")
            }
        }
        let shown = TerminalText.excerpt(path, limit: 200)
        func refuse(_ reason: String) -> Error { Error(description: "episode store \(shown): \(reason)") }
        guard !path.isEmpty else { throw Error(description: "episode store: no path given") }
        // SQLite reads a name starting with `file:` as a URI when the library is built so; a
        // relative path is made explicit so it is always a file name.
        let fileName = path.hasPrefix("file:") ? "./" + path : path

        var status = stat()
        let exists: Bool
        if stat(fileName, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFREG else { throw refuse("not a regular file") }
            exists = true
        } else if errno == ENOENT || errno == ENOTDIR {
            exists = false  // the directory check below says what is wrong
        } else {
            throw refuse(String(cString: strerror(errno)))
        }
        // WAL mode keeps two files beside the store (-wal, -shm), created when it is opened: the
        // directory must be writable by this process (effective ids; EPERM for an immutable one,
        // EROFS on a read-only file system), checked here because SQLite's own error for it names
        // the wrong cause (its read-only retry's ENOENT).
        let directory = fileName.lastIndex(of: "/").map { String(fileName[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let shownDirectory = TerminalText.excerpt(directory, limit: 200)
        var directoryStatus = stat()
        guard stat(directory, &directoryStatus) == 0 else {
            throw refuse("directory \(shownDirectory): \(String(cString: strerror(errno)))")
        }
        guard directoryStatus.st_mode & S_IFMT == S_IFDIR else {
            throw refuse("directory \(shownDirectory): \(String(cString: strerror(ENOTDIR)))")
        }
        guard faccessat(AT_FDCWD, directory, W_OK | X_OK, AT_EACCESS) == 0 else {
            throw refuse("directory \(shownDirectory) is not writable: \(String(cString: strerror(errno)))")
        }
        if exists && status.st_size > 0 {
            try inspect(fileName, busyMilliseconds: milliseconds, refuse: refuse)
        }
        do {
            // An existing file (even an empty one, which SQLite reads as an empty database) is
            // opened without CREATE; a missing one is created.
            let flags = exists ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
            let database = try SQLiteDatabase.open(path: fileName, flags: flags)
            database.setBusyTimeout(milliseconds: milliseconds)
            guard !database.isReadOnly else { throw refuse("not writable (the file is read-only)") }
            let mode = try database.query("PRAGMA journal_mode=WAL").first?.first?.text
            guard mode == "wal" else { throw refuse("cannot switch to WAL mode (journal_mode is \(mode ?? "unknown"))") }
            try database.execute("PRAGMA synchronous=NORMAL")
            try initialize(database)
            return EpisodeStore(path: path, database: database)
        } catch {
            throw refusal(error, refuse)
        }
    }

    /// `busyTimeout` as SQLite takes it.
    private static func busyMilliseconds(_ busyTimeout: Duration) -> Int32 {
        Int32(clamping: busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000)
    }

    /// What opening threw, as the one line `open` and `openReadOnly` refuse with.
    private static func refusal(_ error: any Swift.Error, _ refuse: (String) -> Error) -> Error {
        switch error {
        case let failure as SQLiteDatabase.Failure: refuse(failure.message)
        case let error as Error: error
        default: refuse("\(error)")
        }
    }

    /// Opens an existing store file only to read it (`pg_lock_exporter episodes --path`), while an
    /// exporter may be writing it: through a read-only connection, which never creates the file,
    /// writes it or checkpoints its write-ahead log into it. The file is inspected as `open`
    /// does and refused with one line unless it is an episode store this build reads. Like any
    /// SQLite reader of a WAL database, it may create the empty `-wal` and `-shm` files beside a
    /// store no exporter has open; the store file itself is never changed.
    public static func openReadOnly(path: String, busyTimeout: Duration = defaultBusyTimeout) throws(Error) -> EpisodeStore {
        let milliseconds = busyMilliseconds(busyTimeout)
        let shown = TerminalText.excerpt(path, limit: 200)
        func refuse(_ reason: String) -> Error { Error(description: "episode store \(shown): \(reason)") }
        guard !path.isEmpty, path != ":memory:" else { throw Error(description: "episode store: name a file (:memory: is inside the exporter; use --url)") }
        let fileName = path.hasPrefix("file:") ? "./" + path : path
        var status = stat()
        guard stat(fileName, &status) == 0 else { throw refuse(String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw refuse("not a regular file") }
        guard status.st_size > 0 else { throw refuse("empty: not an episode store") }
        try inspect(fileName, busyMilliseconds: milliseconds, refuse: refuse)
        do {
            let database = try SQLiteDatabase.open(path: fileName, flags: SQLITE_OPEN_READONLY)
            database.setBusyTimeout(milliseconds: milliseconds)
            guard try database.query("PRAGMA application_id").first?.first?.integer == Int64(Self.applicationID) else {
                throw refuse("not an episode store (an empty SQLite database)")
            }
            return EpisodeStore(path: path, database: database)
        } catch {
            throw refusal(error, refuse)
        }
    }

    /// Decides, through a read-only connection, whether the non-empty file at `fileName` may be
    /// opened for writing; throws the refusal otherwise.
    private static func inspect(_ fileName: String, busyMilliseconds: Int32, refuse: (String) -> Error) throws(Error) {
        do {
            let database = try SQLiteDatabase.open(path: fileName, flags: SQLITE_OPEN_READONLY)
            database.setBusyTimeout(milliseconds: busyMilliseconds)
            // integrity_check, not quick_check: quick_check passes a file whose indexes miss rows
            // of their table, and the first write to it fails (found by the fuzz target). Its cost,
            // at open only: 0.27 s for a file of this schema with 100,000 rows of 2 KB (386 MB),
            // measured with Debian's SQLite 3.40 (python3's sqlite3 module, warm page cache).
            let check = try database.query("PRAGMA integrity_check(1)").first?.first?.text ?? "no answer"
            guard check == "ok" else { throw refuse("damaged (integrity_check: \(TerminalText.excerpt(check)))") }
            let applicationID = try database.query("PRAGMA application_id").first?.first?.integer ?? 0
            let version = try database.query("PRAGMA user_version").first?.first?.integer ?? 0
            let objects = try database.query("SELECT count(*) FROM sqlite_schema").first?.first?.integer ?? 0
            if applicationID == 0 && version == 0 && objects == 0 { return }  // an empty SQLite database
            guard applicationID == Int64(Self.applicationID) else {
                throw refuse("not an episode store (an SQLite database of another program, application_id \(applicationID))")
            }
            guard version <= Int64(schemaVersion) else {
                throw refuse("written by a newer pg_lock_exporter (schema version \(version), this one knows up to \(schemaVersion))")
            }
            guard version == Int64(schemaVersion) else {
                throw refuse("unknown schema version \(version)")
            }
            // Exactly the tables and indexes this version creates, as it wrote them: no changed
            // column, no trigger or view that writing a row would run.
            guard try database.query(schemaObjectsQuery) == expectedSchemaObjects else {
                throw refuse("not an episode store of schema version \(version) (its tables differ)")
            }
        } catch let failure as SQLiteDatabase.Failure {
            switch failure.code {
            case SQLITE_NOTADB: throw refuse("not an SQLite database")
            case SQLITE_CORRUPT: throw refuse("damaged (\(failure.message))")
            default: throw refuse(failure.message)
            }
        } catch let error as Error {
            throw error
        } catch {
            throw refuse("\(error)")
        }
    }

    static let schemaObjectsQuery = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"

    /// What `sqlite_schema` holds in a store of `schemaVersion`: read from one made in memory, so
    /// it is SQLite's own record of `schema` (nil, matching no file, if that failed).
    static let expectedSchemaObjects: [[SQLiteValue]]? = {
        guard let database = try? SQLiteDatabase.open(path: ":memory:", flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE),
              (try? initialize(database)) != nil
        else { return nil }
        return try? database.query(schemaObjectsQuery)
    }()

    /// Creates the schema in an empty database, in one transaction with the application id and
    /// version, under a write lock (so two processes creating one file at once make it once).
    /// On a store already at `schemaVersion` it only takes and releases the write lock, which
    /// proves the file, its directory (the WAL and its index) and the lock are usable.
    private static func initialize(_ database: SQLiteDatabase) throws(SQLiteDatabase.Failure) {
        try database.execute("BEGIN IMMEDIATE")
        do {
            let version = try database.query("PRAGMA user_version").first?.first?.integer ?? 0
            if version == 0 {
                try database.execute(schema)
                try database.execute("PRAGMA application_id = \(applicationID)")
                try database.execute("PRAGMA user_version = \(schemaVersion)")
            }
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: Writing and reading

    /// Inserts `record`, or replaces the row with its `id`.
    public func upsert(_ record: EpisodeRecord) throws(Error) {
        let json: String
        do {
            json = String(decoding: try Self.encoder.encode(record), as: UTF8.self)
        } catch {
            throw Error(description: "episode store \(shownPath): episode \(TerminalText.excerpt(record.id)) does not encode: \(error)")
        }
        _ = try withDatabase { database throws(SQLiteDatabase.Failure) in
            try database.query(
                """
                INSERT INTO episodes (id, target, datname, started_at, ended_at, ongoing, record)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                ON CONFLICT (id) DO UPDATE SET target = excluded.target, datname = excluded.datname,
                    started_at = excluded.started_at, ended_at = excluded.ended_at,
                    ongoing = excluded.ongoing, record = excluded.record
                """,
                [.text(record.id), .text(record.target), .text(record.datname),
                 .integer(record.startedAt.microsecondsSinceEpoch),
                 record.ongoing ? .null : record.endedAt.map { .integer($0.microsecondsSinceEpoch) } ?? .null,
                 .integer(record.ongoing ? 1 : 0), .text(json)])
        }
    }

    /// The episode with `id`, nil when there is none.
    public func episode(id: String) throws(Error) -> EpisodeRecord? {
        let rows = try withDatabase { database throws(SQLiteDatabase.Failure) in
            try database.query("SELECT id, record FROM episodes WHERE id = ?1", [.text(id)])
        }
        return try rows.first.map(decode)
    }

    /// Episodes, newest first (by `started_at`, then `id`), at most `limit` (0 or less: none):
    /// - `since`: those going on at or after it (ongoing, or ended at or after it);
    /// - `datname`, `target`: equal to it;
    /// - `ongoing`: only ongoing (true) or only ended (false) ones.
    /// A nil filter keeps every episode.
    public func episodes(
        since: EpisodeRecord.Timestamp? = nil, datname: String? = nil, target: String? = nil,
        ongoing: Bool? = nil, limit: Int = 100
    ) throws(Error) -> [EpisodeRecord] {
        let rows = try withDatabase { database throws(SQLiteDatabase.Failure) in
            try database.query(
                """
                SELECT id, record FROM episodes
                WHERE (?1 IS NULL OR ongoing = 1 OR coalesce(ended_at, started_at) >= ?1)
                  AND (?2 IS NULL OR datname = ?2)
                  AND (?3 IS NULL OR target = ?3)
                  AND (?4 IS NULL OR ongoing = ?4)
                ORDER BY started_at DESC, id DESC
                LIMIT ?5
                """,
                [since.map { .integer($0.microsecondsSinceEpoch) } ?? .null,
                 datname.map { .text($0) } ?? .null,
                 target.map { .text($0) } ?? .null,
                 ongoing.map { .integer($0 ? 1 : 0) } ?? .null,
                 .integer(Int64(max(0, limit)))])
        }
        return try rows.map(decode)
    }

    /// Number of stored episodes.
    public func count() throws(Error) -> Int {
        let rows = try withDatabase { database throws(SQLiteDatabase.Failure) in
            try database.query("SELECT count(*) FROM episodes")
        }
        return Int(rows.first?.first?.integer ?? 0)
    }

    /// Retention (`--episodes.retention`): deletes the episodes that started before `olderThan`,
    /// and all but the newest `keepAtMost` (by `started_at`, then `id`, as `episodes` orders
    /// them; a negative count keeps none). A nil bound prunes nothing by it. Afterwards the store
    /// holds exactly the newest `keepAtMost` of the episodes that started at or after
    /// `olderThan`. Returns how many were deleted. Freed pages are reused by later episodes; the
    /// file does not shrink.
    @discardableResult
    public func prune(olderThan: EpisodeRecord.Timestamp?, keepAtMost: Int?) throws(Error) -> Int {
        try withDatabase { database throws(SQLiteDatabase.Failure) in
            try database.query(
                """
                DELETE FROM episodes
                WHERE started_at < ?1
                   OR id NOT IN (SELECT id FROM episodes ORDER BY started_at DESC, id DESC LIMIT ?2)
                """,
                [olderThan.map { .integer($0.microsecondsSinceEpoch) } ?? .null,
                 .integer(keepAtMost.map { Int64(max(0, $0)) } ?? -1)])
            return database.changes
        }
    }

    /// Closes the connection (a WAL file is checkpointed into the database and removed); any
    /// later call fails with "closed". Dropping the store closes it too.
    public func close() {
        database.withLock { $0 = nil }
    }

    // MARK: Helpers

    private var shownPath: String { TerminalText.excerpt(path, limit: 200) }

    private func withDatabase<T: Sendable>(
        _ body: (SQLiteDatabase) throws(SQLiteDatabase.Failure) -> T
    ) throws(Error) -> T {
        let outcome: Result<T, SQLiteDatabase.Failure>? = database.withLock { database -> Result<T, SQLiteDatabase.Failure>? in
            guard let database else { return nil }
            do throws(SQLiteDatabase.Failure) {
                return .success(try body(database))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case nil: throw Error(description: "episode store \(shownPath): closed")
        case .success(let value): return value
        case .failure(let failure): throw Error(description: "episode store \(shownPath): \(failure.message)")
        }
    }

    private func decode(_ row: [SQLiteValue]) throws(Error) -> EpisodeRecord {
        let id = row.first?.text ?? ""
        do {
            return try JSONDecoder().decode(EpisodeRecord.self, from: Data((row.last?.text ?? "").utf8))
        } catch {
            throw Error(description: "episode store \(shownPath): episode \(TerminalText.excerpt(id)) does not decode (the row was changed outside pg_lock_exporter)")
        }
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

extension SQLiteDatabase.Failure {
    var description: String { message }
}
