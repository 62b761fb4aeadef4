/// When a migration that failed on a lock is tried again: exponential backoff with full jitter,
/// bounded by a number of retries and a total duration. Pure: the random number comes in.
///
/// Full jitter (a delay drawn uniformly from zero to the exponential ceiling) spreads guards
/// that retry at once, and keeps the average wait at half the ceiling. Every attempt keeps its
/// `lock_timeout`: there is no final attempt without one (that would re-create the outage).
/// Durations are `TimeSpan`s: the doubling saturates, nothing can trap.
public struct RetryPolicy: Sendable, Equatable {
    /// Retries after the first attempt (`--retries`).
    public var retries: Int
    /// Ceiling of the delay before the first retry (`--retry-delay`); it doubles per retry.
    public var baseDelay: TimeSpan
    /// The ceiling never grows past this (`--max-retry-delay`).
    public var maxDelay: TimeSpan
    /// No attempt starts once this much time has passed since the first one (`--max-duration`).
    public var maxDuration: TimeSpan

    public init(
        retries: Int = 10, baseDelay: TimeSpan = .seconds(1), maxDelay: TimeSpan = .seconds(30), maxDuration: TimeSpan = .seconds(900)
    ) {
        self.retries = retries
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxDuration = maxDuration
    }

    /// Upper bound of the delay before retry `n` (1 = the first retry): min(cap, base × 2^(n-1)).
    public func delayCeiling(beforeRetry n: Int) -> TimeSpan {
        var ceiling = baseDelay
        var doublings = max(0, n - 1)
        while doublings > 0 && ceiling < maxDelay {
            ceiling = ceiling + ceiling  // saturates at TimeSpan.maximum
            doublings -= 1
        }
        return min(ceiling, maxDelay)
    }

    /// Why no further attempt is made.
    public enum Stop: Error, Sendable, Equatable {
        /// `retries` retries were made.
        case attemptsExhausted
        /// The next attempt would start after `maxDuration`.
        case durationExhausted
    }

    /// The delay before the next attempt after `attempt` attempts (1-based) failed on a lock,
    /// `elapsed` after the first one started; `unit` is uniform in [0, 1) (anything else is
    /// clamped to [0, 1]). A delay that would run past the total duration is cut to what is
    /// left; nothing left means stop.
    public func next(afterAttempt attempt: Int, elapsed: TimeSpan, unit: Double) -> Result<TimeSpan, Stop> {
        guard attempt <= retries else { return .failure(.attemptsExhausted) }
        guard elapsed < maxDuration else { return .failure(.durationExhausted) }
        let delay = delayCeiling(beforeRetry: attempt).scaled(by: unit.isNaN ? 0 : min(max(unit, 0), 1))
        return .success(min(delay, maxDuration - elapsed))
    }
}
