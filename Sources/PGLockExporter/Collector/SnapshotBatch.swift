/// The statements of one collection, sent in one round trip, and the snapshot built from them.
///
/// The statements go out in libpq's pipeline mode, so they share one implicit transaction and
/// `pg_stat_activity` is read once (the server caches the activity snapshot for the
/// transaction). The exporter prepares them once per connection; `check` and `remediate` send
/// them as text with the options they need. No statement carries user input. The first
/// statement sets this collection's statement timeout, so result index 0 is never a snapshot
/// statement.
public struct SnapshotBatch: Sendable {
    /// The oldest server the statements are written for: `pg_locks.waitstart`, the
    /// `pg_stat_database` session counters and libpq's pipeline mode all arrive in 14.
    public static let minimumServerVersion = 140000

    let sessions: SessionsStatement
    let locks = LocksStatement()
    let databases = DatabasesStatement()
    let prepared = PreparedTransactionsStatement()
    /// nil leaves `pg_settings` out (the exporter reads it once a minute).
    let settings: SettingsStatement?
    /// `check` draws the locks each waiter wants; the exporter does not need them.
    let lockDetails: LockDetailsStatement?
    /// The exporter reports the guards as the application's roles get them; `check` and
    /// `remediate` do not need them.
    let roleSettings: RoleSettingsStatement?
    let serverVersion: Int

    public init(
        serverVersion: Int, queryCharacters: Int = 0, lockDetails: Bool = false, identity: Bool = true, settings: Bool = true,
        roleSettings: Bool = false
    ) {
        self.serverVersion = serverVersion
        self.sessions = SessionsStatement(queryCharacters: max(0, queryCharacters), identity: identity)
        self.settings = settings ? SettingsStatement(serverVersion: serverVersion) : nil
        self.lockDetails = lockDetails ? LockDetailsStatement() : nil
        self.roleSettings = roleSettings ? RoleSettingsStatement(serverVersion: serverVersion) : nil
        parts = [.sessions, .locks, .prepared, .databases] + (settings ? [.settings] : []) + (lockDetails ? [.lockDetails] : [])
            + (roleSettings ? [.roleSettings] : [])
    }

    private enum Part {
        case sessions, locks, prepared, databases, settings, lockDetails, roleSettings
    }

    /// The statements after the timeout, in the order they are sent (and their results read).
    private let parts: [Part]

    private func sql(_ part: Part) -> String {
        switch part {
        case .sessions: sessions.sql
        case .locks: locks.sql
        case .prepared: prepared.sql
        case .databases: databases.sql
        case .settings: settings!.sql
        case .lockDetails: lockDetails!.sql
        case .roleSettings: roleSettings!.sql
        }
    }

    private static func preparedName(_ part: Part) -> String {
        switch part {
        case .sessions: SessionsStatement.preparedName
        case .locks: LocksStatement.preparedName
        case .prepared: PreparedTransactionsStatement.preparedName
        case .databases: DatabasesStatement.preparedName
        case .settings: SettingsStatement.preparedName
        case .lockDetails: LockDetailsStatement.preparedName
        case .roleSettings: RoleSettingsStatement.preparedName
        }
    }

    static let timeoutSQL = "SELECT set_config('statement_timeout', $1, false)"
    static let preparedTimeout = "pg_lock_exporter_timeout"

    /// The SQL of every statement in order, the timeout first (`serve --print-sql`, the benchmark).
    public var statementsSQL: [String] { [Self.timeoutSQL] + parts.map(sql) }

    /// Every statement this batch can send, to prepare on a new connection.
    var preparedStatements: [(name: String, sql: String)] {
        [(Self.preparedTimeout, Self.timeoutSQL)] + parts.map { (Self.preparedName($0), sql($0)) }
    }

    /// Refuses servers older than the statements are written for, in one clear line.
    public static func requireSupported(_ serverVersion: Int) throws(PostgresError) {
        guard serverVersion >= minimumServerVersion else {
            throw PostgresError(
                kind: .query,
                message: "PostgreSQL \(serverVersion / 10000) is not supported: pg_lock_exporter needs PostgreSQL 14 or newer")
        }
    }

    /// Sends the batch as text (pipelined) and builds the snapshot.
    public func read(
        on connection: PostgresConnection, statementTimeoutMilliseconds: Int, deadline: Deadline? = nil
    ) throws -> ActivitySnapshot {
        try Self.requireSupported(connection.serverVersion)
        var decoder = Decoder(batch: self)
        try connection.executePipelined(textStatements(statementTimeoutMilliseconds: statementTimeoutMilliseconds), deadline: deadline) {
            index, result in decoder.take(index, result)
        }
        return decoder.snapshot()
    }

    /// The batch as text statements, the statement timeout first: what `read` sends, and what
    /// the sampler's event loop sends with `PostgresConnection.sendPipeline`.
    func textStatements(statementTimeoutMilliseconds: Int) -> [(sql: String, parameters: [String?])] {
        [(sql: Self.timeoutSQL, parameters: [String(max(1, statementTimeoutMilliseconds))])] + parts.map { (sql: sql($0), parameters: []) }
    }

    /// Builds the snapshot from the batch's results as they arrive, in any number of steps.
    struct Decoder {
        let batch: SnapshotBatch
        private var decoded = Decoded()

        init(batch: SnapshotBatch) { self.batch = batch }

        mutating func take(_ index: Int, _ result: borrowing PostgresResult) { batch.decode(index, result, into: &decoded) }

        mutating func snapshot() -> ActivitySnapshot { batch.snapshot(&decoded) }
    }

    /// Prepares every statement of this batch on a new connection, in one round trip.
    func prepare(on connection: PostgresConnection, deadline: Deadline?) throws {
        try Self.requireSupported(connection.serverVersion)
        try connection.prepare(preparedStatements, deadline: deadline)
    }

    /// Runs the statements prepared by `prepare(on:)`: no parsing, no planning, one round trip.
    func readPrepared(
        on connection: PostgresConnection, statementTimeoutMilliseconds: Int, deadline: Deadline?
    ) throws -> ActivitySnapshot {
        var decoded = Decoded()
        let calls = [PostgresConnection.PreparedCall(Self.preparedTimeout, [String(max(1, statementTimeoutMilliseconds))])]
            + parts.map { PostgresConnection.PreparedCall(Self.preparedName($0)) }
        try connection.executePrepared(calls, deadline: deadline) { index, result in
            decode(index, result, into: &decoded)
        }
        return snapshot(&decoded)
    }

    fileprivate struct Decoded {
        var sessions: [Session] = []
        var locks = LocksStatement.Rows()
        var prepared: [PreparedTransaction] = []
        var databases: [DatabaseStats] = []
        var settings: ServerSettings?
        var lockDetails: [LockDetail] = []
        var roleSettings: [RoleSetting] = []
    }

    fileprivate func decode(_ index: Int, _ result: borrowing PostgresResult, into decoded: inout Decoded) {
        guard index >= 1, index <= parts.count else { return }  // 0 is the statement timeout
        switch parts[index - 1] {
        case .sessions: decoded.sessions = sessions.decode(result)
        case .locks: decoded.locks = locks.decode(result)
        case .prepared: decoded.prepared = prepared.decode(result)
        case .databases: decoded.databases = databases.decode(result)
        case .settings: decoded.settings = settings?.decode(result)
        case .lockDetails: decoded.lockDetails = lockDetails?.decode(result) ?? []
        case .roleSettings: decoded.roleSettings = roleSettings?.decode(result) ?? []
        }
    }

    fileprivate func snapshot(_ decoded: inout Decoded) -> ActivitySnapshot {
        // In place: `decoded` holds the only reference to the rows, so nothing is copied.
        SessionAssembly.assemble(&decoded.sessions, locks: decoded.locks, prepared: decoded.prepared)
        var snapshot = ActivitySnapshot(
            serverVersion: serverVersion,
            sessions: decoded.sessions,
            locks: decoded.locks.counts, databases: decoded.databases, lockDetails: decoded.lockDetails,
            settings: decoded.settings ?? ServerSettings(versionString: "", maxConnections: 0, timeouts: [:]),
            roleSettings: decoded.roleSettings)
        snapshot.preparedTransactions = decoded.prepared
        return snapshot
    }
}

extension PostgresConnection {
    /// Reads one snapshot in a single round trip: the query path of `check` and `remediate`
    /// (the exporter uses the prepared form, `SnapshotBatch.readPrepared`).
    public func readSnapshot(
        queryCharacters: Int = 0, lockDetails: Bool = false, identity: Bool = true, settings: Bool = true,
        statementTimeoutMilliseconds: Int, deadline: Deadline? = nil
    ) throws -> ActivitySnapshot {
        try SnapshotBatch(
            serverVersion: serverVersion, queryCharacters: queryCharacters, lockDetails: lockDetails, identity: identity,
            settings: settings
        ).read(on: self, statementTimeoutMilliseconds: statementTimeoutMilliseconds, deadline: deadline)
    }
}
