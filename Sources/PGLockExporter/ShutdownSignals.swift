import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM / SIGINT handling without signal handlers: the signals are blocked in every thread
/// (call `block()` before starting any), and one thread receives them with `sigwait`.
///
/// Shutdown is bounded whatever PostgreSQL is doing: a service gets `graceSeconds` to stop in
/// order and then exits 0 regardless (a handler still waiting on a hung server is abandoned;
/// its deadline would end it later anyway). A one-shot command exits at once with 128 + the
/// signal's number, the shell's convention, so an interrupted `check --fail-on-blocking` is never
/// read as "nothing found".
public enum ShutdownSignals {
    public static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Blocks until SIGTERM or SIGINT arrives; returns its number.
    public static func wait() -> Int32 {
        var set = signalSet()
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }

    /// For services, after a signal: runs `orderly` (stop accepting, cancel statements, close),
    /// but exits 0 after `grace` if it has not returned by then.
    public static func stop(grace: TimeSpan = .milliseconds(1500), _ orderly: () -> Void) {
        DetachedThread.start {
            grace.sleep()
            ShutdownSignals.exit(0, saying: "shutdown took longer than \(grace); exiting")
        }
        orderly()
    }

    public static func name(_ signal: Int32) -> String { signal == SIGTERM ? "SIGTERM" : "SIGINT" }

    /// Writes one line to standard error, flushes what was printed, and ends the process now,
    /// without waiting for threads that may be blocked (`_exit`).
    static func exit(_ status: Int32, saying line: String) -> Never {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        fflush(nil)
        _exit(status)
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        return set
    }
}

/// A one-shot command's answer to SIGTERM / SIGINT: cancel the statement in flight (waiting at
/// most half a second for the request to get through) and exit with 128 + the signal.
public final class Interruption: Sendable {
    private let canceller = Mutex<PostgresCanceller?>(nil)

    /// Blocks the signals and starts the thread that waits for them. Call before any other thread starts.
    public static func install(command: String) -> Interruption {
        ShutdownSignals.block()
        let interruption = Interruption()
        DetachedThread.start {
            let signal = ShutdownSignals.wait()
            interruption.canceller.withLock { $0 }?.cancel(waitingAtMost: .milliseconds(500))
            ShutdownSignals.exit(128 + signal, saying: "\(command): interrupted by \(ShutdownSignals.name(signal))")
        }
        return interruption
    }

    /// The connection whose running statement an interruption cancels.
    public func watch(_ connection: PostgresConnection) {
        let handle = connection.makeCanceller()
        canceller.withLock { $0 = handle }
    }
}
