import CLibPQ
import Dispatch
import Synchronization

/// libpq's `PGcancel`: asks the server to cancel the statement a connection is running.
///
/// `PQcancel` opens a connection of its own and waits for the server to close it, with no
/// timeout of its own (libpq 14/15). Against a path that silently drops packets that wait never
/// ends, so the request runs on a detached thread of its own and the caller waits at most the time
/// it gives. One request at a time per `CancelGate` (one per target, shared by its successive
/// connections): a second one while the first still hangs is not sent, so a hung path costs one
/// thread, not one per attempt or per reconnect.
public final class PostgresCanceller: Sendable {
    // PQcancel is documented as thread-safe for one PGcancel; the pointer is never written after
    // init and freed only in deinit, which waits for the thread (it holds a reference).
    nonisolated(unsafe) private let raw: OpaquePointer
    private let gate: CancelGate

    init(taking raw: OpaquePointer, gate: CancelGate?) {
        self.raw = raw
        self.gate = gate ?? CancelGate()
    }

    deinit { PQfreeCancel(raw) }

    /// Requests cancellation and waits up to `wait` for the server to take the request.
    /// The running statement then fails with SQLSTATE 57014. Returns true when the request went
    /// through in time.
    @discardableResult
    public func cancel(waitingAtMost wait: TimeSpan = .seconds(1)) -> Bool {
        guard !gate.inFlight.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        let done = DispatchSemaphore(value: 0)
        let started = DetachedThread.start { [self] in
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(raw, &buffer, Int32(buffer.count))
            gate.inFlight.store(false, ordering: .releasing)
            done.signal()
        }
        guard started else {
            gate.inFlight.store(false, ordering: .releasing)
            return false
        }
        return done.wait(timeout: wait.fromNow) == .success
    }
}

/// At most one cancel request in flight for the connections that share it (a target's).
public final class CancelGate: Sendable {
    let inFlight = Atomic<Bool>(false)
    public init() {}
}
