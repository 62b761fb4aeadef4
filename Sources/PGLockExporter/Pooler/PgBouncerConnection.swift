import Dispatch

/// The one admin-console connection the exporter keeps to one pooler, opened when first needed
/// and again after a failure. Every wait is bounded by the caller's deadline: a pooler that is
/// stopped holds a reader no longer than that, and the next read reconnects.
///
/// One reader at a time (a scrape and the episodes' refresh may ask together): a semaphore,
/// because only a semaphore can be waited for with a timeout.
final class PgBouncerConnection: @unchecked Sendable {
    // Invariant: `connection` is read and written only by the thread that holds `slot`.
    let endpoint: PgBouncerEndpoint
    private let settings: ConnectionSettings
    private let slot = DispatchSemaphore(value: 1)
    private var connection: PostgresConnection?

    init(_ endpoint: PgBouncerEndpoint, connectTimeoutSeconds: Double, applicationName: String) {
        self.endpoint = endpoint
        var settings = ConnectionSettings(dsn: endpoint.dsn, connectTimeoutSeconds: connectTimeoutSeconds, applicationName: applicationName)
        settings.password = endpoint.password
        settings.cancelGate = CancelGate()
        self.settings = settings
    }

    /// The pooler's servers, clients and pools, read before `deadline`.
    func read(until deadline: Deadline) throws -> PgBouncerListing {
        guard slot.wait(timeout: deadline.dispatchTime) == .success else {
            throw PostgresError(kind: .timeout, message: "another read of this pooler was still running at the deadline")
        }
        defer { slot.signal() }
        if connection?.isHealthy != true {
            connection = nil
            connection = try PostgresConnection(settings, deadline: deadline, peer: .pgbouncerConsole)
        }
        do {
            return try PgBouncerListing.read(on: connection!, pgbouncer: endpoint.name, deadline: deadline)
        } catch {
            if connection?.isHealthy != true { connection = nil }
            throw error
        }
    }

    func close() {
        guard slot.wait(timeout: .now()) == .success else { return }
        connection = nil
        slot.signal()
    }
}
