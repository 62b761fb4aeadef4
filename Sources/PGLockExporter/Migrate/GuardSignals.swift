#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT, SIGTERM and SIGCHLD for the migration guard, without handlers: blocked in every
/// thread (call `block()` before any starts) and received with a deadline (`sigtimedwait`), so
/// the guard's one loop waits for the child, the next poll and a signal at once.
enum GuardSignals {
    struct Received {
        var signal: Int32
    }

    static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A closed stdout must not kill the guard while the child still runs.
        signal(SIGPIPE, SIG_IGN)
        // Taking the terminal back from the child's group (MigrationChild.release) is done
        // from a background group.
        signal(SIGTTOU, SIG_IGN)
    }

    /// Waits up to `span` for one of the signals; nil on timeout.
    static func wait(_ span: TimeSpan) -> Received? {
        var set = signalSet()
        var info = siginfo_t()
        var timeout = span.posixTimespec
        let received = sigtimedwait(&set, &info, &timeout)
        guard received > 0 else { return nil }
        return Received(signal: received)
    }

    /// Sleeps up to `span`; returns the SIGINT or SIGTERM that cut it short.
    static func sleep(_ span: TimeSpan) -> Int32? {
        let deadline = ContinuousClock.now + span.duration
        while ContinuousClock.now < deadline {
            if let received = wait(TimeSpan(clamping: deadline - ContinuousClock.now)), received.signal != SIGCHLD {
                return received.signal
            }
        }
        return nil
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGCHLD] { sigaddset(&set, signal) }
        return set
    }
}
