import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to open a connection: the user's connection string plus the exporter's own settings.
public struct ConnectionSettings: Sendable {
    /// A libpq connection string or URI; empty means libpq's defaults (PGHOST, PGUSER, ...).
    public var dsn: String
    /// Seconds libpq waits for a connection (libpq's minimum is 2). A `connect_timeout` in the
    /// DSN wins.
    public var connectTimeoutSeconds: Int
    /// Always set, so operators can recognise (and exclude) our session in `pg_stat_activity`.
    public var applicationName: String
    /// Server-side guards for every statement of the session, in milliseconds (0 = off).
    public var statementTimeoutMilliseconds: Int
    public var lockTimeoutMilliseconds: Int
    /// A password kept apart from the DSN (read from a file or the environment), so it never
    /// appears in a connection string that could be logged. Wins over one in the DSN.
    public var password: String?

    public init(
        dsn: String, connectTimeoutSeconds: Int = 5, applicationName: String = "pg_lock_exporter",
        statementTimeoutMilliseconds: Int = 5000, lockTimeoutMilliseconds: Int = 1000
    ) {
        self.dsn = dsn
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
    }
}

/// One libpq connection (`PGconn`), in autocommit mode, used by one thread at a time.
///
/// Not `Sendable`: the owner serialises access (the collector keeps it inside a `Mutex`).
/// `PQfinish` runs on every path: when opening fails and when the value is released.
public final class PostgresConnection {
    private let raw: OpaquePointer

    /// Server version as libpq reports it, e.g. 150018 for 15.18.
    public let serverVersion: Int
    /// Our own backend pid, excluded from everything we count or act on.
    public let backendPID: Int32
    /// The database this connection is in (`current_database()`, right behind a pooler's alias).
    public private(set) var database = ""

    public init(_ settings: ConnectionSettings) throws(PostgresError) {
        // Arrays are processed in order and a later keyword wins: connect_timeout first so the
        // DSN may override it, application_name last so it is always ours.
        var pairs: [(String, String)] = [("connect_timeout", String(max(2, settings.connectTimeoutSeconds)))]
        if !settings.dsn.isEmpty { pairs.append(("dbname", settings.dsn)) }
        pairs.append(("application_name", settings.applicationName))
        if let password = settings.password { pairs.append(("password", password)) }

        let connection = Self.connect(pairs)
        guard let connection else { throw PostgresError(kind: .connection, message: "out of memory") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(kind: .connection, message: message)
        }
        raw = connection
        serverVersion = Int(PQserverVersion(connection))
        backendPID = PQbackendPID(connection)
        do {
            // ISO dates in UTC: backend_start and state_change are read as text and compared back
            // by the guarded termination, which must not depend on a role's DateStyle or TimeZone.
            database = try execute(
                """
                SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),
                       set_config('DateStyle', 'ISO', false), set_config('TimeZone', 'UTC', false), current_database()
                """,
                ["\(settings.statementTimeoutMilliseconds)", "\(settings.lockTimeoutMilliseconds)"]
            ) { $0.string(0, 4) ?? "" }
        } catch {
            throw error as? PostgresError ?? PostgresError(kind: .connection, message: "\(error)")
        }
    }

    deinit { PQfinish(raw) }

    /// A handle that cancels this connection's running statement from another thread.
    public func makeCanceller() -> PostgresCanceller? {
        PQgetCancel(raw).map(PostgresCanceller.init(taking:))
    }

    private static func connect(_ pairs: [(String, String)]) -> OpaquePointer? {
        // libpq copies what it needs during PQconnectdbParams, so the C strings only have to
        // live for the duration of the call.
        withCStrings(pairs.map(\.0) + [nil]) { keys in
            withCStrings(pairs.map(\.1) + [nil]) { values in
                PQconnectdbParams(keys.baseAddress, values.baseAddress, 1)
            }
        }
    }

    /// False once the server went away; the owner should drop this connection and open a new one.
    public var isHealthy: Bool { PQstatus(raw) == CONNECTION_OK }

    /// Runs one statement with parameters sent separately from the SQL text (`PQexecParams`),
    /// and hands the result to `body`.
    @discardableResult
    public func execute<T>(
        _ sql: String, _ parameters: [String?] = [], _ body: (borrowing PostgresResult) throws -> T
    ) throws -> T {
        let raw = withCStrings(parameters) { params in
            PQexecParams(self.raw, sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
        }
        let result = try wrap(raw)
        return try body(result)
    }

    /// One call of a prepared statement in a pipeline.
    public struct PreparedCall: Sendable {
        public var name: String
        public var parameters: [String?]
        public init(_ name: String, _ parameters: [String?] = []) {
            self.name = name
            self.parameters = parameters
        }
    }

    /// Prepares statements (name → SQL) in one round trip, using libpq's pipeline mode.
    public func prepare(_ statements: [(name: String, sql: String)]) throws {
        try pipeline(statements.count, send: { index in
            PQsendPrepare(raw, statements[index].name, statements[index].sql, 0, nil)
        }, { _, _ in })
    }

    /// Runs statements with their parameters in one round trip (pipeline mode) and hands each
    /// result to `body` with its index. Until the sync they share one implicit transaction, so
    /// `pg_stat_activity` is read once for all of them.
    public func executePipelined(_ statements: [(sql: String, parameters: [String?])], _ body: (Int, borrowing PostgresResult) throws -> Void) throws {
        try pipeline(statements.count, send: { index in
            withCStrings(statements[index].parameters) { params in
                PQsendQueryParams(raw, statements[index].sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
            }
        }, body)
    }

    /// Runs prepared statements in one round trip (pipeline mode: no parsing, no planning) and hands
    /// each result to `body` with its index, like `executePipelined`.
    public func executePrepared(_ calls: [PreparedCall], _ body: (Int, borrowing PostgresResult) throws -> Void) throws {
        try pipeline(calls.count, send: { index in
            withCStrings(calls[index].parameters) { params in
                PQsendQueryPrepared(raw, calls[index].name, Int32(params.count), params.baseAddress, nil, nil, 0)
            }
        }, body)
    }

    /// Sends `count` requests in pipeline mode, syncs, and reads every result (each request ends
    /// with a NULL from `PQgetResult`, the sync with `PGRES_PIPELINE_SYNC`). After an error the
    /// server skips the rest (`PGRES_PIPELINE_ABORTED`); they are read and dropped, and the first
    /// error is thrown once the pipeline is drained, so the connection stays usable.
    private func pipeline(
        _ count: Int, send: (Int) -> Int32, _ body: (Int, borrowing PostgresResult) throws -> Void
    ) throws {
        guard PQenterPipelineMode(raw) == 1 else {
            throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(raw)))
        }
        defer { PQexitPipelineMode(raw) }
        for index in 0..<count where send(index) != 1 {
            throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(raw)))
        }
        guard PQpipelineSync(raw) == 1 else {
            throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(raw)))
        }
        var firstError: Error?
        for index in 0..<count {
            while let next = PQgetResult(raw) {
                let result = PostgresResult(taking: next)
                if result.status == PGRES_PIPELINE_ABORTED { continue }
                do {
                    let checked = try check(result)
                    if firstError == nil { try body(index, checked) }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if !isHealthy {
                throw firstError ?? PostgresError(kind: .connection, message: String(cString: PQerrorMessage(raw)))
            }
        }
        // The sync point.
        if let sync = PQgetResult(raw) {
            _ = PostgresResult(taking: sync)
        }
        if let firstError { throw firstError }
    }

    private func wrap(_ raw: OpaquePointer?) throws(PostgresError) -> PostgresResult {
        guard let raw else {
            throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(self.raw)))
        }
        return try check(PostgresResult(taking: raw))
    }

    /// Passes a successful result through; turns an error result into a `PostgresError`.
    private func check(_ result: consuming PostgresResult) throws(PostgresError) -> PostgresResult {
        switch result.status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return result
        default:
            let error = result.error
            if !isHealthy { throw PostgresError(kind: .connection, sqlState: error.sqlState, message: error.message) }
            throw error
        }
    }
}

/// Passes an array of optional strings to C as `const char *const *` (nil stays NULL). The copies
/// live only for the call: libpq copies what it keeps.
private func withCStrings<T>(_ strings: [String?], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> T) -> T {
    let copies = strings.map { $0.map { strdup($0) } ?? nil }
    defer { copies.forEach { free($0) } }
    return copies.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer(body)
}

/// libpq's `PGcancel`: asks the server to cancel the statement a connection is running. Made for
/// use from another thread while the connection's owner is blocked in a query.
public final class PostgresCanceller: Sendable {
    // PQcancel is documented as thread-safe for one PGcancel; the pointer is never written after
    // init and freed only in deinit.
    nonisolated(unsafe) private let raw: OpaquePointer

    init(taking raw: OpaquePointer) { self.raw = raw }

    deinit { PQfreeCancel(raw) }

    /// Requests cancellation; the running statement then fails with SQLSTATE 57014.
    public func cancel() {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(raw, &buffer, Int32(buffer.count))
    }
}
