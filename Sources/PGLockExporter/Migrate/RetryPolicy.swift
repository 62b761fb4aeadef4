/// When a migration that failed on a lock is tried again: exponential backoff with full jitter,
/// bounded by a number of retries and a total duration. Pure: the random number comes in.
///
/// Full jitter (a delay drawn uniformly from zero to the exponential ceiling) spreads guards
/// that retry at once, and keeps the average wait at half the ceiling. Every attempt keeps its
/// `lock_timeout`: there is no final attempt without one (that would re-create the outage).
public struct RetryPolicy: Sendable, Equatable {
    /// Retries after the first attempt (`--retries`).
    public var retries: Int
    /// Ceiling of the delay before the first retry (`--retry-delay`); it doubles per retry.
    public var baseDelaySeconds: Double
    /// The ceiling never grows past this (`--max-retry-delay`).
    public var maxDelaySeconds: Double
    /// No attempt starts once this much time has passed since the first one (`--max-duration`).
    public var maxDurationSeconds: Double

    public init(retries: Int = 10, baseDelaySeconds: Double = 1, maxDelaySeconds: Double = 30, maxDurationSeconds: Double = 900) {
        self.retries = retries
        self.baseDelaySeconds = baseDelaySeconds
        self.maxDelaySeconds = maxDelaySeconds
        self.maxDurationSeconds = maxDurationSeconds
    }

    /// Upper bound of the delay before retry `n` (1 = the first retry): min(cap, base × 2^(n-1)).
    public func delayCeiling(beforeRetry n: Int) -> Double {
        let exponent = Double(max(0, min(n - 1, 62)))
        return min(maxDelaySeconds, baseDelaySeconds * Double.pow2(exponent))
    }

    /// Why no further attempt is made.
    public enum Stop: Error, Sendable, Equatable {
        /// `retries` retries were made.
        case attemptsExhausted
        /// The next attempt would start after `maxDurationSeconds`.
        case durationExhausted
    }

    /// The delay before the next attempt after `attempt` attempts (1-based) failed on a lock,
    /// `elapsed` seconds after the first one started; `unit` is uniform in [0, 1). A delay that
    /// would run past the total duration is cut to what is left; nothing left means stop.
    public func next(afterAttempt attempt: Int, elapsed: Double, unit: Double) -> Result<Double, Stop> {
        guard attempt <= retries else { return .failure(.attemptsExhausted) }
        let left = maxDurationSeconds - elapsed
        guard left > 0 else { return .failure(.durationExhausted) }
        let delay = delayCeiling(beforeRetry: attempt) * min(max(unit, 0), 1)
        return .success(min(delay, left))
    }
}

extension Double {
    fileprivate static func pow2(_ exponent: Double) -> Double {
        var value = 1.0
        for _ in 0..<Int(exponent) { value *= 2 }
        return value
    }
}
