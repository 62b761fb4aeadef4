import Foundation

/// A real client session: `psql` reading statements from a pipe, so a test can leave a
/// transaction open, queue an `ALTER TABLE` behind it, and end the session when it likes.
final class PsqlSession {
    private let child: ChildProcess
    let applicationName: String

    init(dsn: String, applicationName: String) throws {
        self.applicationName = applicationName
        child = try ChildProcess(["psql", "-X", "-q", "\(dsn) application_name=\(applicationName)"], stdinPipe: true)
    }

    /// Sends SQL without waiting for it to finish (it may block on a lock).
    func send(_ sql: String) { child.write(sql + "\n") }

    var isRunning: Bool { child.isRunning }

    /// What psql printed so far.
    var output: String { child.output }

    /// Closes psql's input: it finishes what it is doing, then exits.
    func close() { child.closeInput() }

    /// Waits for psql to exit after `close()`; returns its status.
    func waitForExit(timeout: Double = 30) -> Int32? { child.wait(timeout: timeout) }

    /// Ends the session abruptly (the server rolls its transaction back).
    func kill() {
        child.signal(SIGKILL)
        child.wait(timeout: 5)
    }
}
