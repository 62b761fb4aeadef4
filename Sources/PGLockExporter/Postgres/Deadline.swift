/// A point in time by which an operation must be over: a connect, a statement, a whole scrape.
///
/// Every wait on the network is bounded by one of these, so a server that stops answering (or a
/// path that silently drops packets) costs at most the caller's budget, never the kernel's
/// retransmission time.
public struct Deadline: Sendable, Comparable, CustomStringConvertible {
    public let instant: ContinuousClock.Instant

    public init(_ instant: ContinuousClock.Instant) { self.instant = instant }

    /// `seconds` from now; negative or NaN budgets are already over.
    public static func after(seconds: Double) -> Deadline {
        let clamped = seconds.isNaN ? 0 : min(max(0, seconds), 86_400 * 365)
        return Deadline(.now + .nanoseconds(Int64(clamped * 1e9)))
    }

    /// Seconds left (0 once passed).
    public var remainingSeconds: Double { max(0, (instant - .now).seconds) }

    public var hasPassed: Bool { ContinuousClock.now >= instant }

    /// The earlier of two deadlines.
    public func capped(at other: Deadline?) -> Deadline {
        guard let other else { return self }
        return min(self, other)
    }

    /// Milliseconds left for `poll()`, rounded up so a wait never ends just before the deadline.
    var pollMilliseconds: Int32 {
        Int32(min(Double(Int32.max), (remainingSeconds * 1000).rounded(.up)))
    }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.instant < b.instant }

    public var description: String { "deadline in \(DurationText.format(remainingSeconds))" }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
