import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One libpq connection (`PGconn`) in autocommit mode, where every network wait has a deadline.
///
/// libpq runs in non-blocking mode: `PQconnectStartParams`/`PQconnectPoll` to connect, then
/// `PQsend…`, `PQflush`, `PQconsumeInput` and `PQisBusy`, with `poll()` on `PQsocket` between
/// them. One deadline bounds a whole operation, connect included (every address of a
/// multi-host DSN together). When it passes, the statement is cancelled on the server
/// (`PQcancel`, bounded), the connection is marked broken and a `.timeout` error is thrown; the
/// owner opens a new connection next time.
///
/// This is the only way the product sends statements. Not `Sendable`: the owner serialises
/// access. `PQfinish` runs on every path: when opening fails and when the value is released.
public final class PostgresConnection {
    private let raw: OpaquePointer
    private let settings: ConnectionSettings
    private let canceller: PostgresCanceller?
    /// Set after a timeout or a lost connection: the protocol state is unknown, so nothing more
    /// is sent on this connection.
    private var broken = false

    /// Server version as libpq reports it, e.g. 150018 for 15.18.
    public let serverVersion: Int
    /// Our own backend pid, excluded from everything we count or act on.
    public let backendPID: Int32
    /// The database this connection is in (`current_database()`, right behind a pooler's alias).
    public private(set) var database = ""

    /// What a new connection's session is set up for.
    public enum Peer: Sendable {
        /// A PostgreSQL server: the session gets its timeouts, ISO dates in UTC, and its database.
        case postgres
        /// PgBouncer's admin console (`dbname=pgbouncer`): it speaks only the simple query
        /// protocol (`simpleQuery`) and has no settings to set, so nothing is sent on connect.
        case pgbouncerConsole
    }

    /// Connects and sets the session up, all before `deadline` (and within the connect timeout
    /// of the settings or the DSN's `connect_timeout`, whichever applies).
    public init(_ settings: ConnectionSettings, deadline: Deadline? = nil, peer: Peer = .postgres) throws(PostgresError) {
        self.settings = settings
        raw = try Self.connect(settings, deadline: deadline)
        serverVersion = Int(PQserverVersion(raw))
        backendPID = PQbackendPID(raw)
        canceller = PQgetCancel(raw).map { PostgresCanceller(taking: $0, gate: settings.cancelGate) }
        if peer == .pgbouncerConsole {
            database = "pgbouncer"
            return
        }
        do {
            // ISO dates in UTC: backend_start and state_change are read as text and compared back
            // by the guarded termination, which must not depend on a role's DateStyle or TimeZone.
            database = try execute(
                """
                SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),
                       set_config('DateStyle', 'ISO', false), set_config('TimeZone', 'UTC', false), current_database()
                """,
                ["\(settings.statementTimeoutMilliseconds)", "\(settings.lockTimeoutMilliseconds)"],
                deadline: settings.defaultStatementDeadline.capped(at: deadline)
            ) { $0.string(0, 4) ?? "" }
        } catch let error as PostgresError {
            throw error.kind == .query ? PostgresError(kind: .connection, sqlState: error.sqlState, message: error.message) : error
        } catch {
            throw PostgresError(kind: .connection, message: "\(error)")
        }
    }

    deinit { PQfinish(raw) }

    /// A handle that cancels this connection's running statement from another thread.
    public func makeCanceller() -> PostgresCanceller? {
        PQgetCancel(raw).map { PostgresCanceller(taking: $0, gate: settings.cancelGate) }
    }

    /// False once the server went away or an operation timed out; the owner should drop this
    /// connection and open a new one.
    public var isHealthy: Bool { !broken && PQstatus(raw) == CONNECTION_OK }

    /// The socket's TCP options as the kernel has them: `TCP_KEEPIDLE` in seconds and
    /// `TCP_USER_TIMEOUT` in milliseconds (nil on a Unix socket).
    var tcpOptions: (keepaliveIdleSeconds: Int32, userTimeoutMilliseconds: Int32)? {
        let fd = PQsocket(raw)
        var idle: Int32 = 0, userTimeout: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, &length) == 0 else { return nil }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &userTimeout, &length) == 0 else { return nil }
        return (idle, userTimeout)
    }

    // MARK: Connecting

    /// Pipeline mode, which every collection uses, arrived in libpq 14.
    static let minimumLibpqVersion: Int32 = 140000

    private static func connect(_ settings: ConnectionSettings, deadline: Deadline?) throws(PostgresError) -> OpaquePointer {
        guard PQlibVersion() >= minimumLibpqVersion else {
            throw PostgresError(
                kind: .connection, message: "libpq \(PQlibVersion() / 10000) is too old: pg_lock_exporter needs libpq 14 or newer")
        }
        // Arrays are processed in order: the TCP defaults come first so the DSN's own keywords
        // override them (expand_dbname), application_name and the password last so they always win.
        var pairs = ConnectionSettings.tcpDefaults
        if !settings.dsn.isEmpty { pairs.append(("dbname", settings.dsn)) }
        pairs.append(("application_name", settings.applicationName))
        if let password = settings.password { pairs.append(("password", password)) }

        // libpq copies what it needs during PQconnectStartParams, so the C strings only have to
        // live for the duration of the call. Host names are resolved inside it, synchronously:
        // use hostaddr (or an IP address) where DNS itself may hang.
        let started = withCStrings(pairs.map(\.0) + [nil]) { keys in
            withCStrings(pairs.map(\.1) + [nil]) { values in
                PQconnectStartParams(keys.baseAddress, values.baseAddress, 1)
            }
        }
        guard let connection = started else { throw PostgresError(kind: .connection, message: "out of memory") }
        let timeout = dsnConnectTimeout(connection) ?? settings.connectTimeoutSeconds
        let connectDeadline = Deadline.after(seconds: timeout).capped(at: deadline)
        do {
            try pollConnect(connection, until: connectDeadline, timeoutSeconds: timeout)
        } catch {
            PQfinish(connection)
            throw error
        }
        guard PQsetnonblocking(connection, 1) == 0 else {
            let error = failure(connection, kind: .connection)
            PQfinish(connection)
            throw error
        }
        return connection
    }

    /// Drives `PQconnectPoll` until the connection is made, fails, or the deadline passes. The
    /// socket can change between calls (libpq moves on to the next address), so it is read anew
    /// each time.
    private static func pollConnect(_ connection: OpaquePointer, until deadline: Deadline, timeoutSeconds: Double) throws(PostgresError) {
        guard PQstatus(connection) != CONNECTION_BAD else { throw connectFailure(connection) }
        var state = PGRES_POLLING_WRITING
        while true {
            switch state {
            case PGRES_POLLING_OK:
                return
            case PGRES_POLLING_FAILED:
                throw connectFailure(connection)
            default:
                let forWrite = state == PGRES_POLLING_WRITING
                switch SocketWait.wait(PQsocket(connection), read: !forWrite, write: forWrite, until: deadline) {
                case .ready: break
                case .timedOut:
                    throw PostgresError(
                        kind: .timeout,
                        message: "could not connect to PostgreSQL within \(DurationText.format(timeoutSeconds)) (or the caller's deadline)")
                case .failed(let reason):
                    throw PostgresError(kind: .connection, message: "waiting for the connection: \(reason)")
                }
                state = PQconnectPoll(connection)
            }
        }
    }

    /// The DSN's own `connect_timeout`, if it sets one: libpq ignores it in non-blocking mode, so
    /// the deadline applies it instead.
    private static func dsnConnectTimeout(_ connection: OpaquePointer) -> Double? {
        guard let options = PQconninfo(connection) else { return nil }
        defer { PQconninfoFree(options) }
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            if strcmp(keyword, "connect_timeout") == 0, let value = cursor.pointee.val {
                // As libpq: values under 2 s are raised to 2 s, 0 means "no limit" (ours still applies).
                return Double(String(cString: value)).flatMap { $0 > 0 ? max(2, $0) : nil }
            }
            cursor += 1
        }
        return nil
    }

    private static func connectFailure(_ connection: OpaquePointer) -> PostgresError {
        let message = String(cString: PQerrorMessage(connection))
        // libpq reports no SQLSTATE for a failed connect; these are the server's words for
        // 28P01 (invalid_password) and 28000 (invalid_authorization_specification).
        let refused = PQconnectionNeedsPassword(connection) == 1
            || ["authentication failed", "pg_hba.conf", "password", "role \""].contains { message.contains($0) }
        return PostgresError(kind: refused ? .authentication : .connection, message: message)
    }

    private static func failure(_ connection: OpaquePointer, kind: PostgresError.Kind) -> PostgresError {
        PostgresError(kind: kind, message: String(cString: PQerrorMessage(connection)))
    }

    // MARK: Statements

    /// Runs one statement with parameters sent separately from the SQL text
    /// (`PQsendQueryParams`) and hands the result to `body`. Without a deadline, the settings'
    /// statement timeout plus a second applies.
    @discardableResult
    public func execute<T>(
        _ sql: String, _ parameters: [String?] = [], deadline: Deadline? = nil,
        _ body: (borrowing PostgresResult) throws -> T
    ) throws -> T {
        let deadline = deadline ?? settings.defaultStatementDeadline
        try usable()
        let sent = withCStrings(parameters) { params in
            PQsendQueryParams(raw, sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
        }
        guard sent == 1 else { throw lost() }
        try flush(until: deadline)
        var output: T?
        var firstError: Error?
        try drainRequest(until: deadline, &firstError) { result in
            if output == nil { output = try body(result) }
        }
        if let firstError { throw firstError }
        guard let output else { throw PostgresError(kind: .connection, message: "the server sent no result") }
        return output
    }

    /// Runs one command over the simple query protocol (`PQsendQuery`: no parameters, one
    /// command, the only protocol PgBouncer's admin console speaks) and hands its result to `body`.
    @discardableResult
    public func simpleQuery<T>(
        _ sql: String, deadline: Deadline? = nil, _ body: (borrowing PostgresResult) throws -> T
    ) throws -> T {
        let deadline = deadline ?? settings.defaultStatementDeadline
        try usable()
        guard PQsendQuery(raw, sql) == 1 else { throw lost() }
        try flush(until: deadline)
        var output: T?
        var firstError: Error?
        try drainRequest(until: deadline, &firstError) { result in
            if output == nil { output = try body(result) }
        }
        if let firstError { throw firstError }
        guard let output else { throw PostgresError(kind: .connection, message: "the server sent no result") }
        return output
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
    public func prepare(_ statements: [(name: String, sql: String)], deadline: Deadline? = nil) throws {
        try pipeline(statements.count, deadline: deadline ?? settings.defaultStatementDeadline, send: { index in
            PQsendPrepare(raw, statements[index].name, statements[index].sql, 0, nil)
        }, { _, _ in })
    }

    /// Runs statements with their parameters in one round trip (pipeline mode) and hands each
    /// result to `body` with its index. Until the sync they share one implicit transaction, so
    /// `pg_stat_activity` is read once for all of them.
    public func executePipelined(
        _ statements: [(sql: String, parameters: [String?])], deadline: Deadline? = nil,
        _ body: (Int, borrowing PostgresResult) throws -> Void
    ) throws {
        try pipeline(statements.count, deadline: deadline ?? settings.defaultStatementDeadline, send: { index in
            withCStrings(statements[index].parameters) { params in
                PQsendQueryParams(raw, statements[index].sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
            }
        }, body)
    }

    /// Runs prepared statements in one round trip (pipeline mode: no parsing, no planning) and
    /// hands each result to `body` with its index, like `executePipelined`.
    public func executePrepared(
        _ calls: [PreparedCall], deadline: Deadline? = nil, _ body: (Int, borrowing PostgresResult) throws -> Void
    ) throws {
        try pipeline(calls.count, deadline: deadline ?? settings.defaultStatementDeadline, send: { index in
            withCStrings(calls[index].parameters) { params in
                PQsendQueryPrepared(raw, calls[index].name, Int32(params.count), params.baseAddress, nil, nil, 0)
            }
        }, body)
    }

    /// Sends `count` requests in pipeline mode, syncs, and reads every result (each request ends
    /// with a NULL from `PQgetResult`, the sync with `PGRES_PIPELINE_SYNC`). After an error the
    /// server skips the rest (`PGRES_PIPELINE_ABORTED`); they are read and dropped, and the first
    /// error is thrown once the pipeline is drained, so the connection stays usable.
    ///
    /// The waiting form of `sendPipeline` + `advancePipeline`, which the sampler's event loop
    /// drives for many connections at once: one way to send statements, two ways to wait.
    private func pipeline(
        _ count: Int, deadline: Deadline, send: (Int) -> Int32, _ body: (Int, borrowing PostgresResult) throws -> Void
    ) throws {
        try sendPipeline(count, send: send)
        while try !advancePipeline(body) {
            try wait(read: true, write: pipelineWantsWrite, until: deadline)
        }
    }

    // MARK: Pipelines driven by an event loop

    /// The pipeline in flight: how many requests it has, which one is being read, and the first
    /// error met (thrown once the sync point is read).
    private struct PendingPipeline {
        var count: Int
        var index = 0
        var firstError: Error?
        var wantsWrite = false
    }

    private var pending: PendingPipeline?

    /// The socket to `poll()` while a pipeline is in flight.
    public var socket: Int32 { PQsocket(raw) }

    /// True while libpq still has bytes of the pipeline to send: poll for writing as well.
    public var pipelineWantsWrite: Bool { pending?.wantsWrite ?? false }

    /// Sends a pipeline of text statements without waiting for anything (libpq buffers what the
    /// socket does not take yet); `advancePipeline` reads the results as they come.
    public func sendPipeline(_ statements: [(sql: String, parameters: [String?])]) throws {
        try sendPipeline(statements.count) { index in
            withCStrings(statements[index].parameters) { params in
                PQsendQueryParams(raw, statements[index].sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
            }
        }
    }

    private func sendPipeline(_ count: Int, send: (Int) -> Int32) throws(PostgresError) {
        try usable()
        guard pending == nil, PQenterPipelineMode(raw) == 1 else { throw lost() }
        // A connection left in pipeline mode (a send that failed halfway, commands still queued)
        // would answer nothing more: it is given up rather than reused.
        for index in 0..<count where send(index) != 1 {
            broken = true
            throw lost()
        }
        guard PQpipelineSync(raw) == 1 else {
            broken = true
            throw lost()
        }
        pending = PendingPipeline(count: count)
        try flushWithoutWaiting()
    }

    /// Reads what has arrived, without waiting, and hands each successful result to `body` with
    /// its request's index. Returns true once the sync point is read: the pipeline is over, the
    /// connection out of pipeline mode, and the first error of any request thrown. False: poll
    /// the socket (for writing too while `pipelineWantsWrite`) and call again.
    public func advancePipeline(_ body: (Int, borrowing PostgresResult) throws -> Void) throws -> Bool {
        guard var state = pending else { throw PostgresError(kind: .connection, message: "no pipeline in flight") }
        defer { if pending != nil { pending = state } }
        try flushWithoutWaiting()
        state.wantsWrite = pending?.wantsWrite ?? false
        guard PQconsumeInput(raw) == 1 else {
            pending = nil
            throw lost()
        }
        while PQisBusy(raw) == 0 {
            guard let result = PQgetResult(raw).map(PostgresResult.init(taking:)) else {
                state.index += 1  // a request's results end with NULL
                continue
            }
            if result.status == PGRES_PIPELINE_SYNC {
                pending = nil
                if PQexitPipelineMode(raw) != 1 { broken = true }
                if let error = state.firstError { throw error }
                return true
            }
            if result.status == PGRES_PIPELINE_ABORTED { continue }
            do {
                let checked = try check(result)
                if state.firstError == nil, state.index < state.count { try body(state.index, checked) }
            } catch {
                if state.firstError == nil { state.firstError = error }
                if !isHealthy {
                    pending = nil
                    throw error
                }
            }
        }
        return false
    }

    /// Gives up a pipeline in flight (its deadline passed): asks the server to cancel the
    /// statement without waiting for the request, and marks the connection broken.
    public func abandonPipeline() {
        pending = nil
        broken = true
        canceller?.cancel(waitingAtMost: .zero)
    }

    /// `PQflush` once: notes whether bytes are left to send (poll for writing then).
    private func flushWithoutWaiting() throws(PostgresError) {
        switch PQflush(raw) {
        case 0: pending?.wantsWrite = false
        case 1: pending?.wantsWrite = true
        default:
            pending = nil
            throw lost()
        }
    }

    /// Reads one request's results up to libpq's NULL. Each successful result goes to `handle`
    /// until the first error, which is kept in `firstError`; what comes after it (in a pipeline,
    /// `PGRES_PIPELINE_ABORTED`) is read and dropped, so the connection stays in step.
    private func drainRequest(
        until deadline: Deadline, _ firstError: inout Error?, _ handle: (borrowing PostgresResult) throws -> Void
    ) throws(PostgresError) {
        while let next = try nextResult(until: deadline) {
            if next.status == PGRES_PIPELINE_ABORTED { continue }
            do {
                let checked = try check(next)
                if firstError == nil { try handle(checked) }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
    }

    // MARK: Waiting

    private func usable() throws(PostgresError) {
        guard isHealthy else {
            throw PostgresError(kind: .connection, message: "the connection is no longer usable: \(String(cString: PQerrorMessage(raw)))")
        }
    }

    /// Sends what libpq has buffered, reading input meanwhile so the server never blocks on us.
    private func flush(until deadline: Deadline) throws(PostgresError) {
        while true {
            switch PQflush(raw) {
            case 0: return
            case 1:
                try wait(read: true, write: true, until: deadline)
                guard PQconsumeInput(raw) == 1 else { throw lost() }
            default: throw lost()
            }
        }
    }

    /// The next result, waiting for input as long as libpq is busy; nil ends a request.
    private func nextResult(until deadline: Deadline) throws(PostgresError) -> PostgresResult? {
        while PQisBusy(raw) == 1 {
            try wait(read: true, write: false, until: deadline)
            guard PQconsumeInput(raw) == 1 else { throw lost() }
        }
        return PQgetResult(raw).map(PostgresResult.init(taking:))
    }

    /// Waits for the socket in slices of at most 100 ms: after each, the caller reads what
    /// arrived (`PQconsumeInput`) even when `poll()` saw nothing, so bytes a TLS layer already
    /// decrypted but `poll()` cannot see never stall a read until the deadline.
    private func wait(read: Bool, write: Bool, until deadline: Deadline) throws(PostgresError) {
        let slice = Deadline.after(seconds: 0.1).capped(at: deadline)
        switch SocketWait.wait(PQsocket(raw), read: read, write: write, until: slice) {
        case .ready:
            return
        case .timedOut where !deadline.hasPassed:
            return
        case .failed(let reason):
            broken = true
            throw PostgresError(kind: .connection, message: "waiting for PostgreSQL: \(reason)")
        case .timedOut:
            // The server may still be working on our statement: ask it to stop, without waiting
            // for the request (it may hang on the same path), then give the connection up.
            broken = true
            canceller?.cancel(waitingAtMost: .zero)
            throw PostgresError(kind: .timeout, message: "PostgreSQL did not answer before the deadline; the statement was cancelled and the connection dropped")
        }
    }

    private func lost() -> PostgresError {
        broken = broken || PQstatus(raw) != CONNECTION_OK
        return PostgresError(kind: .connection, message: String(cString: PQerrorMessage(raw)))
    }

    /// Passes a successful result through; turns an error result into a `PostgresError`.
    private func check(_ result: consuming PostgresResult) throws(PostgresError) -> PostgresResult {
        switch result.status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return result
        default:
            let error = result.error
            if PQstatus(raw) != CONNECTION_OK {
                broken = true
                throw PostgresError(kind: .connection, sqlState: error.sqlState, message: error.message)
            }
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
