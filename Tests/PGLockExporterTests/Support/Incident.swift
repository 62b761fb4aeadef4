import PGLockExporter

/// The seed incident, reproduced for real in its own database: a worker left idle in
/// transaction after reading `features`, a migration's `ALTER TABLE` queued behind it, and
/// readers queued behind the migration.
final class Incident {
    let cluster: TestCluster
    let database: String
    let holder: PsqlSession
    let migration: PsqlSession
    let readers: [PsqlSession]
    /// Pids by role, read from `pg_stat_activity`.
    let holderPID: Int32
    let migrationPID: Int32
    let readerPIDs: [Int32]

    init(cluster: TestCluster, readers readerCount: Int = 2, database: String? = nil) throws {
        self.cluster = cluster
        let database = try database ?? cluster.createDatabase("incident")
        self.database = database
        let admin = try cluster.connect(database: database)
        try admin.execute("CREATE TABLE IF NOT EXISTS features (id int PRIMARY KEY, name text)") { _ in }
        try admin.execute("INSERT INTO features SELECT g, 'f' || g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING") { _ in }
        let dsn = cluster.dsn(database: database)

        holder = try PsqlSession(dsn: dsn, applicationName: "worker")
        holder.send("BEGIN; SELECT * FROM features LIMIT 1;")
        holderPID = try Self.waitFor(admin, "worker", state: "idle in transaction").first!

        migration = try PsqlSession(dsn: dsn, applicationName: "alembic")
        migration.send("ALTER TABLE features ADD COLUMN signature text;")
        migrationPID = try Self.waitFor(admin, "alembic", waitingOnLock: true).first!

        var readers: [PsqlSession] = []
        for _ in 0..<readerCount {
            let reader = try PsqlSession(dsn: dsn, applicationName: "web")
            reader.send("SELECT count(*) FROM features;")
            readers.append(reader)
        }
        self.readers = readers
        readerPIDs = readerCount == 0 ? [] : try Self.waitFor(admin, "web", waitingOnLock: true, count: readerCount)
    }

    /// Pids of sessions with `application` in the wanted state, once `count` of them are there.
    static func waitFor(
        _ connection: PostgresConnection, _ application: String, state: String? = nil, waitingOnLock: Bool = false,
        count: Int = 1
    ) throws -> [Int32] {
        var pids: [Int32] = []
        try eventually("\(count) \(application) session(s) \(state ?? "waiting on a lock")") {
            pids = try connection.execute(
                """
                SELECT pid FROM pg_stat_activity
                WHERE application_name = $1 AND datname = current_database()
                  AND ($2::text IS NULL OR state = $2) AND (NOT $3::bool OR wait_event_type = 'Lock')
                ORDER BY pid
                """, [application, state, waitingOnLock ? "true" : "false"]
            ) { result in (0..<result.rowCount).map { Int32(result.int($0, 0)!) } }
            return pids.count == count
        }
        return pids
    }

    func end() {
        holder.kill()
        migration.kill()
        readers.forEach { $0.kill() }
    }

    deinit { end() }
}
