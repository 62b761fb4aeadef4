import Dispatch

/// A target's one connection and what it has learnt about the server, kept together so that a
/// reconnect drops every cache that describes the server: its settings, its version and the
/// statements prepared on it.
///
/// One user at a time. A scrape waits for it until its deadline (`withState(until:)`); the
/// background sampler never waits (`withStateIfAvailable`). A semaphore rather than a mutex,
/// because only a semaphore can be waited for with a timeout.
final class TargetConnection: @unchecked Sendable {
    // Invariant: `state` is read and written only by the thread that holds `slot`.
    private let slot = DispatchSemaphore(value: 1)
    private var state: State?

    struct State {
        let connection: PostgresConnection
        /// `pg_settings` as last read on this connection, and when.
        var settings: ServerSettings?
        var settingsRead: ContinuousClock.Instant?
    }

    /// Runs `body` with the state (nil: no connection yet, or the last one was dropped), once the
    /// slot is free; throws a timeout when it stays taken until `deadline`.
    func withState<T>(until deadline: Deadline, _ body: (inout State?) throws -> T) throws -> T {
        guard slot.wait(timeout: deadline.dispatchTime) == .success else {
            throw PostgresError(kind: .timeout, message: "the target's connection was busy until the deadline")
        }
        defer { slot.signal() }
        return try body(&state)
    }

    /// The slot, taken without waiting and held until `release()`: the sampler's event loop keeps
    /// it across many iterations (while its statements are in flight), and may hand it to a
    /// connector thread and back. nil when someone holds the slot.
    func tryLease() -> Lease? {
        slot.wait(timeout: .now()) == .success ? Lease(self) : nil
    }

    /// One holder's access to the state while it holds the slot.
    final class Lease: @unchecked Sendable {
        // Invariant: used by one thread at a time (the loop, or a connector it hands the lease
        // to, never both), and not after `release()`, which runs exactly once.
        private let owner: TargetConnection
        private var released = false
        fileprivate init(_ owner: TargetConnection) { self.owner = owner }

        var state: State? {
            get { owner.state }
            set { owner.state = newValue }
        }

        func release() {
            guard !released else { return }
            released = true
            owner.slot.signal()
        }

        deinit { release() }
    }

    /// Runs `body` only if nobody else holds the slot right now.
    func withStateIfAvailable<T>(_ body: (inout State?) -> T) -> T? {
        guard slot.wait(timeout: .now()) == .success else { return nil }
        defer { slot.signal() }
        return body(&state)
    }
}
