import Foundation
import PGLockExporter

/// A real PgBouncer (Debian's `pgbouncer`, never the system service) in front of the test
/// cluster: started by the test on 127.0.0.1 and a free port, as the cluster's unprivileged
/// user when the tests run as root, with a directory of its own (configuration, auth file, log).
///
/// Users (plain passwords in the auth file; the test cluster trusts every login):
/// - `postgres` / `app-secret`: the application's, for the pooled databases;
/// - `pgb_stats` / `stats-secret`: in `stats_users`, what the exporter reads with;
/// - `pgb_admin` / `admin-secret`: in `admin_users`;
/// - `pgb_nobody` / `nobody-secret`: in neither (the console answers `not allowed`).
///
/// Pooled database `app` points at `database` on the cluster, over TCP, so every server
/// connection has a local address and port that `pg_stat_activity` shows.
final class PgBouncerFixture {
    let directory: String
    let port: Int
    let poolMode: String
    private var pid: Int32 = 0

    static let statsPassword = "stats-secret"
    static let appPassword = "app-secret"

    init(cluster: TestCluster, database: String, poolMode: String = "session", poolSize: Int = 5) throws {
        self.poolMode = poolMode
        directory = "/tmp/pgbouncer-tests-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError = ""
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let ini = """
                [databases]
                app = host=127.0.0.1 port=\(cluster.port) dbname=\(database)

                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = \(port)
                unix_socket_dir =
                auth_type = plain
                auth_file = \(directory)/users.txt
                admin_users = pgb_admin
                stats_users = pgb_stats
                pool_mode = \(poolMode)
                default_pool_size = \(poolSize)
                logfile = \(directory)/pgbouncer.log
                pidfile = \(directory)/pgbouncer.pid

                """
            try ini.write(toFile: "\(directory)/pgbouncer.ini", atomically: true, encoding: .utf8)
            try """
                "postgres" "\(Self.appPassword)"
                "pgb_stats" "\(Self.statsPassword)"
                "pgb_admin" "admin-secret"
                "pgb_nobody" "nobody-secret"

                """.write(toFile: "\(directory)/users.txt", atomically: true, encoding: .utf8)
            try "\(Self.statsPassword)\n".write(toFile: "\(directory)/stats.pw", atomically: true, encoding: .utf8)
            let owner = getuid() == 0 ? ["runuser", "-u", "postgres", "--"] : []
            if getuid() == 0 { _ = try Shell.run(["chown", "-R", "postgres", directory]) }
            _ = try Shell.run(owner + ["/usr/sbin/pgbouncer", "-d", "\(directory)/pgbouncer.ini"])
            if let pid = try? Self.waitForPID(directory) {
                self.pid = pid
                self.port = port
                // pgbouncer outlives a crashed test process otherwise.
                try Shell.launchDetached([
                    "/bin/sh", "-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; kill -9 \(pid) 2>/dev/null; rm -rf \(directory)",
                ])
                return
            }
            lastError = (try? String(contentsOfFile: "\(directory)/pgbouncer.log", encoding: .utf8)) ?? "no log"
        }
        throw TestFailure("could not start pgbouncer (/usr/sbin/pgbouncer; apt-get install pgbouncer): \(lastError.suffix(500))")
    }

    private static func waitForPID(_ directory: String) throws -> Int32 {
        for _ in 0..<50 {
            if let text = try? String(contentsOfFile: "\(directory)/pgbouncer.pid", encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0,
                (try? String(contentsOfFile: "\(directory)/pgbouncer.log", encoding: .utf8))?.contains("listening on 127.0.0.1") == true
            {
                return pid
            }
            usleep(100_000)
        }
        throw TestFailure("pgbouncer did not start")
    }

    /// The admin console's DSN for `user` (password apart: `statsPasswordFile`).
    func adminDSN(user: String = "pgb_stats") -> String {
        "host=127.0.0.1 port=\(port) dbname=pgbouncer user=\(user)"
    }

    /// The stats user's password, in a file (mode 0600, as `--pgbouncer.password-file` wants).
    var statsPasswordFile: String { "\(directory)/stats.pw" }

    /// The pooler's name as the exporter shows it.
    var name: String { "127.0.0.1:\(port)" }

    /// An application DSN through the pooler (at `port`, default the pooler's own).
    func appDSN(port: Int? = nil) -> String {
        "host=127.0.0.1 port=\(port ?? self.port) dbname=app user=postgres password=\(Self.appPassword)"
    }

    var log: String { (try? String(contentsOfFile: "\(directory)/pgbouncer.log", encoding: .utf8)) ?? "" }

    /// `SIGSTOP`: the pooler keeps its sockets and answers nothing.
    func pause() { kill(pid, SIGSTOP) }
    func resume() { kill(pid, SIGCONT) }

    /// `SIGKILL`: the pooler is gone, its port refuses.
    func kill9() {
        kill(pid, SIGCONT)
        kill(pid, SIGKILL)
        pid = 0
    }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        for _ in 0..<50 where kill(pid, 0) == 0 { usleep(100_000) }
        kill(pid, SIGKILL)
        pid = 0
    }

    deinit { stop() }
}
