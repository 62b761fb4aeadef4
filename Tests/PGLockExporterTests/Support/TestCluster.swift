import Testing
import Foundation
import PGLockExporter

/// The throwaway PostgreSQL server of this test process, started once through
/// `scripts/pg-sandbox` (as an unprivileged user when the tests run as root) and stopped by a
/// watchdog when the test process ends, even when it crashes.
///
/// A missing or broken server is an error every integration test reports: never a skip.
final class TestCluster: Sendable {
    let directory: String
    let port: Int
    let bindir: String

    private static let shared = Result { try TestCluster.start() }

    static func get() throws -> TestCluster { try shared.get() }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    private init(directory: String, port: Int, bindir: String) {
        self.directory = directory
        self.port = port
        self.bindir = bindir
    }

    private static func start() throws -> TestCluster {
        let script = packageRoot.appendingPathComponent("scripts/pg-sandbox").path
        let directory = "/tmp/pg-lock-tests-\(getpid())"
        var lastError = ""
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let result = try Shell.run([script, "start", directory, String(port)])
            if result.status == 0 {
                let bindir = try Shell.run([script, "bindir"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                // The watchdog stops the server once this process is gone.
                let watchdog = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \"\(script)\" stop \(directory); rm -rf \(directory)"
                try Shell.launchDetached(["/bin/sh", "-c", watchdog])
                return TestCluster(directory: directory, port: port, bindir: bindir)
            }
            lastError = result.output
        }
        throw TestFailure("could not start the test PostgreSQL with scripts/pg-sandbox: \(lastError)")
    }

    /// Connection string for a database of this cluster (Unix socket).
    func dsn(database: String = "postgres", user: String = "postgres", extra: String = "") -> String {
        "host=\(directory) port=\(port) user=\(user) dbname=\(database) \(extra)"
    }

    /// A superuser connection for arranging and observing the tests.
    func connect(database: String = "postgres") throws -> PostgresConnection {
        try PostgresConnection(ConnectionSettings(dsn: dsn(database: database), applicationName: "pg_lock_tests"))
    }

    /// A fresh database, so tests in parallel never see each other's sessions.
    func createDatabase(_ prefix: String = "t") throws -> String {
        let name = "\(prefix)_\(UInt32.random(in: 0..<UInt32.max))"
        try connect().execute("CREATE DATABASE \(name)") { _ in }
        return name
    }

    func restart() throws {
        let script = Self.packageRoot.appendingPathComponent("scripts/pg-sandbox").path
        _ = try Shell.run([script, "stop", directory])
        let result = try Shell.run([script, "start", directory, String(port)])
        guard result.status == 0 else { throw TestFailure("restart failed: \(result.output)") }
    }

    func stop() throws {
        let script = Self.packageRoot.appendingPathComponent("scripts/pg-sandbox").path
        _ = try Shell.run([script, "stop", directory])
    }

    func start() throws {
        let script = Self.packageRoot.appendingPathComponent("scripts/pg-sandbox").path
        let result = try Shell.run([script, "start", directory, String(port)])
        guard result.status == 0 else { throw TestFailure("start failed: \(result.output)") }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs commands for the fixtures.
enum Shell {
    struct Result {
        var status: Int32
        var output: String
    }

    static func run(_ arguments: [String], timeout: Double = 120) throws -> Result {
        let child = try ChildProcess(arguments)
        guard let status = child.wait(timeout: timeout) else {
            throw TestFailure("\(arguments.joined(separator: " ")) did not finish within \(Int(timeout))s")
        }
        return Result(status: status, output: child.output)
    }

    /// Starts a command that outlives the test process (the server's watchdog).
    static func launchDetached(_ arguments: [String]) throws {
        _ = try Shell.run(["/bin/sh", "-c", "setsid \(arguments.map { "'\($0)'" }.joined(separator: " ")) >/dev/null 2>&1 < /dev/null &"])
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(
    _ what: String, timeout: Double = 10, _ condition: () throws -> Bool
) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw TestFailure("timed out after \(timeout)s waiting for: \(what)")
}

/// Every test that talks to PostgreSQL lives in an extension of this suite, so they run one at a
/// time: one of them restarts the shared server.
@Suite(.serialized) enum IntegrationTests {}
