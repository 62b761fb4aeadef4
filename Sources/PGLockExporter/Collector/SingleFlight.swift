import Dispatch
import Synchronization

/// Runs at most one piece of work at a time and lets concurrent callers share its result.
///
/// The first caller (the leader) does the work on its own thread; callers that arrive while it
/// runs wait for that result, each up to its own timeout, and get nil when it runs out. This is
/// how concurrent scrapes share one database collection.
public final class SingleFlight<Value: Sendable>: Sendable {
    private final class Flight: Sendable {
        let done = DispatchGroup()
        let value = Mutex<Value?>(nil)
    }

    private let current = Mutex<Flight?>(nil)

    public init() {}

    /// The leader runs `work` (which bounds itself); a caller that joins waits at most `timeout`.
    public func run(timeout: TimeSpan, _ work: () -> Value) -> Value? {
        let (flight, isLeader) = current.withLock { current -> (Flight, Bool) in
            if let running = current { return (running, false) }
            let flight = Flight()
            flight.done.enter()
            current = flight
            return (flight, true)
        }
        guard isLeader else {
            guard flight.done.wait(timeout: timeout.fromNow) == .success else { return nil }
            return flight.value.withLock { $0 }
        }
        let value = work()
        flight.value.withLock { $0 = value }
        current.withLock { $0 = nil }
        flight.done.leave()
        return value
    }
}
