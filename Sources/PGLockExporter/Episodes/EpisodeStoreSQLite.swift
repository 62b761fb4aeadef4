import CSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One SQLite connection (Debian's libsqlite3 through `CSQLite`), for `EpisodeStore`. This file is
/// the only one that sees an SQLite pointer: values go in as `SQLiteValue`s bound to `?n`
/// parameters of prepared statements (never spliced into SQL text) and come out copied into Swift
/// values.
///
/// Thread rule: not thread-safe by itself (opened with `SQLITE_OPEN_NOMUTEX`, SQLite's
/// "multi-thread" mode); `EpisodeStore` holds it inside a `Mutex`, so one thread at a time uses it.
final class SQLiteDatabase {
    /// An SQLite error, its message one line.
    struct Failure: Error {
        /// The primary result code (`SQLITE_NOTADB`, `SQLITE_CORRUPT`, …).
        let code: Int32
        let message: String
    }

    private let handle: OpaquePointer
    /// Prepared statements by their SQL text, prepared once and reset after each use.
    private var statements: [String: OpaquePointer] = [:]

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Opens `path` with `flags` (`SQLITE_OPEN_READONLY`, or `SQLITE_OPEN_READWRITE` with or
    /// without `SQLITE_OPEN_CREATE`). The path is a file name, never a URI.
    static func open(path: String, flags: Int32) throws(Failure) -> SQLiteDatabase {
        var raw: OpaquePointer?
        let code = sqlite3_open_v2(path, &raw, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nil)
        guard let raw else { throw Failure(code: SQLITE_NOMEM, message: "out of memory") }
        // The handle exists even when the open failed, and must be closed then too.
        let database = SQLiteDatabase(handle: raw)
        guard code == SQLITE_OK else { throw database.failure(code) }
        return database
    }

    /// Wait up to `milliseconds` for another connection's lock before `SQLITE_BUSY`.
    func setBusyTimeout(milliseconds: Int32) {
        sqlite3_busy_timeout(handle, milliseconds)
    }

    /// True when SQLite opened the file read-only although read-write was asked (the file or its
    /// directory is not writable).
    var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `sql` with `values` bound to `?1`, `?2`, … and returns every row.
    @discardableResult
    func query(_ sql: String, _ values: [SQLiteValue] = []) throws(Failure) -> [[SQLiteValue]] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let code: Int32
            switch value {
            case .null:
                code = sqlite3_bind_null(statement, position)
            case .integer(let number):
                code = sqlite3_bind_int64(statement, position, number)
            case .real(let number):
                code = sqlite3_bind_double(statement, position, number)
            case .text(let text):
                // The length is given, so a NUL inside the text is stored too.
                code = text.withCString {
                    sqlite3_bind_text64(statement, position, $0, UInt64(text.utf8.count), csqlite_transient(), UInt8(SQLITE_UTF8))
                }
            }
            guard code == SQLITE_OK else { throw failure(code) }
        }
        var rows: [[SQLiteValue]] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { return rows }
            guard code == SQLITE_ROW else { throw failure(code) }
            rows.append((0..<sqlite3_column_count(statement)).map { column(statement, $0) })
        }
    }

    /// Runs statements that take no values (schema, pragmas, `BEGIN`/`COMMIT`).
    func execute(_ sql: String) throws(Failure) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw failure(code) }
    }

    private func prepared(_ sql: String) throws(Failure) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw failure(code) }
        statements[sql] = statement
        return statement
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(statement, index))
        case SQLITE_NULL:
            return .null
        default:
            // Text (and a blob, read as text): the pointer is valid until the next step or reset,
            // and the bytes are copied here.
            guard let text = sqlite3_column_text(statement, index) else { return .null }
            let count = Int(sqlite3_column_bytes(statement, index))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        }
    }

    /// The connection's message for `code`, with the operating system's reason when an OS call
    /// failed (`unable to open database file: Permission denied`), on one line.
    private func failure(_ code: Int32) -> Failure {
        var message = sqlite3_errmsg(handle).map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        let systemError = sqlite3_system_errno(handle)
        let primary = code & 0xFF
        if systemError != 0, primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR || primary == SQLITE_READONLY {
            message += ": " + String(cString: strerror(systemError))
        }
        return Failure(code: primary, message: TerminalText.safe(message))
    }
}

/// A value bound to, or read from, an SQLite statement.
enum SQLiteValue: Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    var integer: Int64? {
        if case .integer(let number) = self { return number }
        return nil
    }

    var text: String? {
        if case .text(let text) = self { return text }
        return nil
    }
}
