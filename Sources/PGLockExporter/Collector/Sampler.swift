import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `Collector.sample()` every interval, one thread per target, until stopped.
///
/// One thread per target, not one for all: a target whose server hangs holds its own thread for
/// at most its sample's deadline and never delays another target's samples. Owned by the
/// command that starts it.
public final class Sampler: Sendable {
    private let stopped = Atomic<Bool>(false)

    /// `interval` is raised to at least 10 ms.
    public init(collectors: [Collector], interval: TimeSpan) {
        let interval = max(interval, .milliseconds(10)).duration
        for collector in collectors {
            DetachedThread.start { self.run(collector, every: interval) }
        }
    }

    private func run(_ collector: Collector, every interval: Duration) {
        var next = ContinuousClock.now
        while !stopped.load(ordering: .relaxed) {
            collector.sample()
            next += interval
            let now = ContinuousClock.now
            if next < now { next = now }  // after a slow sample: no burst to catch up
            sleep(until: next)
        }
    }

    /// Sleeps in slices of at most 100 ms, so `stop()` takes effect quickly.
    private func sleep(until instant: ContinuousClock.Instant) {
        while !stopped.load(ordering: .relaxed) {
            let left = TimeSpan(clamping: instant - .now)
            if left == .zero { return }
            min(left, .milliseconds(100)).sleep()
        }
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }
}
