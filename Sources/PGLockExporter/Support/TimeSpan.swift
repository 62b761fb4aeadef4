import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A length of time that no conversion can trap on: a whole number of nanoseconds between zero
/// and `TimeSpan.maximum` (365 days).
///
/// Numbers from outside (a flag, a request header, a DSN's `connect_timeout`, a server setting)
/// become a `TimeSpan` once, through the clamping initializers, and every wait is computed from
/// the span, never from the outside number. Because the count of nanoseconds is bounded (3.2e16,
/// far below `Int64.max`), every conversion below (milliseconds, nanoseconds, `Duration`,
/// `DispatchTime`, `poll()`'s `Int32`, `timespec`) is a plain integer operation that cannot
/// overflow.
///
/// Clamping, documented once for every initializer: NaN and anything negative (−∞ included) give
/// `zero`; anything above the maximum (+∞ included) gives `maximum`. Zero is the safe end for an
/// undefined wait: a deadline built from it has already passed, so nothing waits on a number that
/// means nothing. Callers that want a different answer for nonsense (the scrape budget: the
/// default) check the number before converting it.
public struct TimeSpan: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Always in `0 ... TimeSpan.maximumNanoseconds`.
    public let nanoseconds: Int64

    /// 365 days: longer than any timeout, interval or budget the tool has a use for, and small
    /// enough that the nanoseconds, added to any clock reading, stay far inside 64 bits.
    public static let maximumNanoseconds: Int64 = 365 * 86_400 * 1_000_000_000
    public static let maximum = TimeSpan(bounded: maximumNanoseconds)
    public static let zero = TimeSpan(bounded: 0)

    private init(bounded nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// Clamps to `0 ... maximum` (see the type's documentation).
    public init(clampingNanoseconds nanoseconds: Int64) {
        self.init(bounded: min(max(0, nanoseconds), Self.maximumNanoseconds))
    }

    /// Seconds, rounded to the nearest nanosecond; NaN and negatives → zero, above the maximum
    /// (+∞ included) → maximum.
    public init(clampingSeconds seconds: Double) {
        let nanoseconds = seconds * 1e9
        // `!(x > 0)` is true for NaN as well as for zero and negatives.
        if !(nanoseconds > 0) {
            self = .zero
        } else if nanoseconds >= Double(Self.maximumNanoseconds) {
            self = .maximum
        } else {
            self.init(clampingNanoseconds: Int64(nanoseconds.rounded()))
        }
    }

    /// Milliseconds; negatives → zero, above the maximum → maximum.
    public init(clampingMilliseconds milliseconds: Int) {
        let limit = Int(Self.maximumNanoseconds / 1_000_000)
        self.init(bounded: Int64(min(max(0, milliseconds), limit)) * 1_000_000)
    }

    /// A `Duration` (e.g. the difference of two clock readings); negatives → zero, above the
    /// maximum → maximum.
    public init(clamping duration: Duration) {
        if duration <= .zero {
            self = .zero
        } else if duration >= Self.maximum.duration {
            self = .maximum
        } else {
            let (seconds, attoseconds) = duration.components  // seconds < 3.2e7 here: no overflow
            self.init(clampingNanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
    }

    public static func seconds(_ seconds: Double) -> TimeSpan { TimeSpan(clampingSeconds: seconds) }
    public static func milliseconds(_ milliseconds: Int) -> TimeSpan { TimeSpan(clampingMilliseconds: milliseconds) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    /// Whole milliseconds, rounded down (at most 3.2e10: fits any `Int`).
    public var milliseconds: Int { Int(nanoseconds / 1_000_000) }

    /// Whole milliseconds, rounded up, so a wait of this many milliseconds is never shorter.
    public var millisecondsRoundedUp: Int { Int((nanoseconds + 999_999) / 1_000_000) }

    public var duration: Duration { .nanoseconds(nanoseconds) }

    /// For `DispatchSemaphore.wait(timeout:)`, `DispatchGroup.wait(timeout:)`: this long from now.
    public var fromNow: DispatchTime { .now() + .nanoseconds(Int(nanoseconds)) }

    /// For `poll()`: milliseconds rounded up (so the wait never ends early), capped at
    /// `Int32.max` (about 24.8 days: a longer wait is simply polled again).
    public var pollMilliseconds: Int32 { Int32(min(millisecondsRoundedUp, Int(Int32.max))) }

    /// For `nanosleep()`.
    public var posixTimespec: timespec {
        timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// Sleeps this long on the calling thread (resuming after signal interruptions).
    public func sleep() {
        var request = posixTimespec
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// Saturating: never above the maximum.
    public static func + (a: TimeSpan, b: TimeSpan) -> TimeSpan {
        TimeSpan(clampingNanoseconds: a.nanoseconds + b.nanoseconds)  // both ≤ 3.2e16: no overflow
    }

    /// Saturating: never below zero.
    public static func - (a: TimeSpan, b: TimeSpan) -> TimeSpan {
        TimeSpan(clampingNanoseconds: a.nanoseconds - b.nanoseconds)
    }

    /// Scaled by `factor`, clamped like `init(clampingSeconds:)` (NaN or negative factors → zero).
    public func scaled(by factor: Double) -> TimeSpan { TimeSpan(clampingSeconds: seconds * factor) }

    public static func < (a: TimeSpan, b: TimeSpan) -> Bool { a.nanoseconds < b.nanoseconds }

    /// `DurationText`'s form: `250ms`, `1m30s`.
    public var description: String { DurationText.format(self) }
}
