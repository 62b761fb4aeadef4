import Foundation

/// The real `pg_lock_exporter` binary, started with the given arguments on a free port.
final class ExporterProcess {
    let child: ChildProcess
    private(set) var port: Int = 0

    /// The binary built next to the test bundle (or `PG_LOCK_EXPORTER_BIN`).
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["PG_LOCK_EXPORTER_BIN"] { return path }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        // The runner is …/debug/pg_lock_exporterPackageTests.xctest, next to the executable.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("pg_lock_exporter").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("pg_lock_exporter").path
    }

    /// Starts the exporter and waits until it logs its listening address.
    init(_ arguments: [String], environment: [String: String] = [:], waitForListening: Bool = true) throws {
        var args = arguments
        if !args.contains(where: { $0.hasPrefix("--web.listen-address") || $0.hasPrefix("--listen") }) {
            args += ["--web.listen-address", "127.0.0.1:0"]
        }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATA_SOURCE_NAME")
        child = try ChildProcess([Self.binary] + args, environment: env.merging(environment) { $1 })
        if waitForListening {
            try eventually("the exporter to log its listening address") {
                // logfmt: msg=listening address=HOST:PORT; json: "msg":"listening","address":"HOST:PORT"
                for pattern in [#"msg=listening address=[^ ]*:\d+"#, #""msg":"listening","address":"[^"]*:\d+"#] {
                    if let range = log.range(of: pattern, options: .regularExpression) {
                        port = Int(log[range].split(separator: ":").last!.filter(\.isNumber))!
                        return true
                    }
                }
                if !child.isRunning { throw TestFailure("exporter exited early: \(log)") }
                return false
            }
        }
    }

    /// Everything the exporter logged so far.
    var log: String { child.output }

    var isRunning: Bool { child.isRunning }

    func get(_ path: String = "/metrics", method: String = "GET", headers: [String: String] = [:]) throws -> HTTPReply {
        try HTTPClient.request(port: port, method: method, path: path, headers: headers)
    }

    func metrics(headers: [String: String] = [:]) throws -> Exposition {
        let reply = try get("/metrics", headers: headers)
        guard reply.status == 200 else { throw TestFailure("GET /metrics answered \(reply.status)") }
        return try Exposition(parsing: reply.body)
    }

    /// Sends SIGTERM and waits; returns the exit status.
    func terminate(timeout: Double = 10) throws -> Int32 {
        child.signal(SIGTERM)
        guard let status = child.wait(timeout: timeout) else { throw TestFailure("exporter ignored SIGTERM") }
        return status
    }

    /// Waits for a process that exits on its own (bad flags); returns the status.
    func waitForExit(timeout: Double = 10) throws -> Int32 {
        guard let status = child.wait(timeout: timeout) else { throw TestFailure("exporter did not exit") }
        return status
    }
}
