import Dispatch
import PropertyBased
import Testing

@testable import PGLockExporter

/// "No conversion of an outside number can trap": every Double, every Int, every Duration
/// becomes a `TimeSpan` in range, and every conversion of a span is in range too.
@Suite struct TimeSpanTests {
    static let maximumSeconds = 365.0 * 86_400

    @Test func hostileSecondsClampToTheDocumentedEnds() {
        #expect(TimeSpan(clampingSeconds: .nan) == .zero)
        #expect(TimeSpan(clampingSeconds: -.nan) == .zero)
        #expect(TimeSpan(clampingSeconds: .signalingNaN) == .zero)
        #expect(TimeSpan(clampingSeconds: -.infinity) == .zero)
        #expect(TimeSpan(clampingSeconds: -1) == .zero)
        #expect(TimeSpan(clampingSeconds: -.leastNonzeroMagnitude) == .zero)
        #expect(TimeSpan(clampingSeconds: -0.0) == .zero)
        #expect(TimeSpan(clampingSeconds: .infinity) == .maximum)
        #expect(TimeSpan(clampingSeconds: .greatestFiniteMagnitude) == .maximum)
        #expect(TimeSpan(clampingSeconds: 1.1e10) == .maximum)  // the header of finding 1
        #expect(TimeSpan(clampingSeconds: Double(Int.max)) == .maximum)
        #expect(TimeSpan(clampingSeconds: Self.maximumSeconds) == .maximum)
        #expect(TimeSpan(clampingSeconds: .leastNonzeroMagnitude) == .zero)  // rounds to 0 ns
        #expect(TimeSpan(clampingSeconds: 1.5).nanoseconds == 1_500_000_000)
        #expect(TimeSpan.maximum.nanoseconds == 31_536_000_000_000_000)
    }

    @Test func hostileIntegersAndDurationsClamp() {
        #expect(TimeSpan(clampingMilliseconds: .min) == .zero)
        #expect(TimeSpan(clampingMilliseconds: -1) == .zero)
        #expect(TimeSpan(clampingMilliseconds: .max) == .maximum)
        #expect(TimeSpan(clampingMilliseconds: 1500).nanoseconds == 1_500_000_000)
        #expect(TimeSpan(clampingNanoseconds: .min) == .zero)
        #expect(TimeSpan(clampingNanoseconds: .max) == .maximum)
        #expect(TimeSpan(clamping: Duration.seconds(Int64.max)) == .maximum)
        #expect(TimeSpan(clamping: Duration.seconds(Int64.min)) == .zero)
        #expect(TimeSpan(clamping: .zero - .nanoseconds(1)) == .zero)
        #expect(TimeSpan(clamping: .milliseconds(1500)).nanoseconds == 1_500_000_000)
    }

    @Test func conversionsOfTheExtremes() {
        #expect(TimeSpan.maximum.milliseconds == 31_536_000_000)
        #expect(TimeSpan.maximum.millisecondsRoundedUp == 31_536_000_000)
        #expect(TimeSpan.maximum.pollMilliseconds == Int32.max)
        #expect(TimeSpan.maximum.duration == .seconds(31_536_000))
        #expect(TimeSpan.maximum.seconds == Self.maximumSeconds)
        #expect(TimeSpan.maximum.posixTimespec.tv_sec == 31_536_000)
        #expect(TimeSpan.zero.pollMilliseconds == 0)
        #expect(TimeSpan(clampingNanoseconds: 1).pollMilliseconds == 1)  // rounded up: never early
        #expect(TimeSpan(clampingNanoseconds: 1).milliseconds == 0)
        #expect(TimeSpan(clampingNanoseconds: 1_999_999_999).posixTimespec.tv_nsec == 999_999_999)
        #expect(TimeSpan.maximum + .maximum == .maximum)
        #expect(TimeSpan.zero - .maximum == .zero)
        #expect(TimeSpan.maximum.scaled(by: .infinity) == .maximum)
        #expect(TimeSpan.maximum.scaled(by: .nan) == .zero)
        #expect(TimeSpan.seconds(2).scaled(by: -1) == .zero)
        // A year from now is a valid Dispatch time, later than now.
        #expect(TimeSpan.maximum.fromNow > DispatchTime.now())
    }

    @Test func deadlinesFromHostileBudgets() {
        for hostile: Double in [.nan, -.infinity, -1e300, -1] {
            #expect(Deadline.after(seconds: hostile).hasPassed)
            #expect(Deadline.after(seconds: hostile).remaining == .zero)
            #expect(Deadline.after(seconds: hostile).pollMilliseconds == 0)
        }
        for hostile: Double in [.infinity, 1e300, 1.1e10] {
            let deadline = Deadline.after(seconds: hostile)
            #expect(deadline.remaining <= .maximum && deadline.remaining > .maximum - .seconds(5))
            #expect(deadline.pollMilliseconds == Int32.max)
            #expect(deadline.description.hasPrefix("deadline in 87"))  // 8759h59m…
        }
    }

    /// Every bit pattern of a Double: NaNs of every payload, subnormals, both infinities.
    static let anyDouble = Gen.uint64().map { Double(bitPattern: $0) }

    @Test func noDoubleMapsToATrapAndEveryConversionStaysInRange() async {
        await propertyCheck(count: 2000, input: Self.anyDouble) { seconds in
            let span = TimeSpan(clampingSeconds: seconds)
            #expect(span >= .zero && span <= .maximum)
            #expect(span.milliseconds >= 0 && span.milliseconds <= 31_536_000_000)
            #expect(span.millisecondsRoundedUp >= span.milliseconds)
            #expect(span.pollMilliseconds >= 0)
            #expect(span.duration >= .zero && span.duration <= .seconds(31_536_000))
            #expect(span.seconds.isFinite && span.seconds >= 0 && span.seconds <= Self.maximumSeconds)
            _ = span.fromNow
            _ = span.posixTimespec
            _ = span.description
            _ = DurationText.format(seconds)
            _ = Deadline.after(seconds: seconds).pollMilliseconds
            if seconds.isNaN || seconds <= 0 { #expect(span == .zero) }
            if seconds >= Self.maximumSeconds { #expect(span == .maximum) }
        }
    }

    @Test func conversionIsMonotone() async {
        await propertyCheck(count: 2000, input: Self.anyDouble, Self.anyDouble) { a, b in
            guard !a.isNaN, !b.isNaN else { return }
            let (low, high) = a <= b ? (a, b) : (b, a)
            let (l, h) = (TimeSpan(clampingSeconds: low), TimeSpan(clampingSeconds: high))
            #expect(l <= h, "\(low) → \(l.nanoseconds) ns, \(high) → \(h.nanoseconds) ns")
            #expect(l.milliseconds <= h.milliseconds && l.pollMilliseconds <= h.pollMilliseconds)
            #expect(l.duration <= h.duration && l.seconds <= h.seconds)
        }
        // Near the scale people use, too (random bit patterns are mostly huge or tiny).
        await propertyCheck(count: 2000, input: Gen.double(in: -10...1e8), Gen.double(in: -10...1e8)) { a, b in
            let (low, high) = a <= b ? (a, b) : (b, a)
            #expect(TimeSpan(clampingSeconds: low) <= TimeSpan(clampingSeconds: high))
        }
    }

    @Test func anyIntegerOfMillisecondsOrNanosecondsIsInRange() async {
        await propertyCheck(count: 1000, input: Gen.int(), Gen.int64()) { ms, ns in
            let a = TimeSpan(clampingMilliseconds: ms), b = TimeSpan(clampingNanoseconds: ns)
            #expect(a >= .zero && a <= .maximum && b >= .zero && b <= .maximum)
            #expect((a + b) <= .maximum && (a - b) >= .zero)
        }
    }
}
