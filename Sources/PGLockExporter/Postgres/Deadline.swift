import Dispatch

/// A point in time by which an operation must be over: a connect, a statement, a whole scrape.
///
/// Every wait on the network is bounded by one of these, so a server that stops answering (or a
/// path that silently drops packets) costs at most the caller's budget, never the kernel's
/// retransmission time. Budgets are `TimeSpan`s and what is left is read as one (`remaining`),
/// so every wait derived from a deadline converts without overflow.
public struct Deadline: Sendable, Comparable, CustomStringConvertible {
    public let instant: ContinuousClock.Instant

    public init(_ instant: ContinuousClock.Instant) { self.instant = instant }

    /// `span` from now.
    public static func after(_ span: TimeSpan) -> Deadline { Deadline(.now + span.duration) }

    /// `seconds` from now, clamped as `TimeSpan(clampingSeconds:)`: negative or NaN budgets are
    /// already over, more than a year is a year.
    public static func after(seconds: Double) -> Deadline { after(TimeSpan(clampingSeconds: seconds)) }

    /// Time left (zero once passed; at most `TimeSpan.maximum`).
    public var remaining: TimeSpan { TimeSpan(clamping: instant - .now) }

    /// Seconds left (0 once passed).
    public var remainingSeconds: Double { remaining.seconds }

    /// The deadline for Dispatch's `wait(timeout:)`.
    public var dispatchTime: DispatchTime { remaining.fromNow }

    public var hasPassed: Bool { ContinuousClock.now >= instant }

    /// The earlier of two deadlines.
    public func capped(at other: Deadline?) -> Deadline {
        guard let other else { return self }
        return min(self, other)
    }

    /// Milliseconds left for `poll()`, rounded up so a wait never ends just before the deadline.
    var pollMilliseconds: Int32 { remaining.pollMilliseconds }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.instant < b.instant }

    public var description: String { "deadline in \(remaining)" }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
