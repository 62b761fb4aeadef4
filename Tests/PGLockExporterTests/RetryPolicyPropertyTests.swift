import PropertyBased
import Testing

@testable import PGLockExporter

/// The retry policy and the lock-failure classifier on random inputs (swift-property-based):
/// whole runs of attempts of random lengths under random flags, and random output with and
/// without SQLSTATE 55P03's texts.
@Suite struct RetryPolicyPropertyTests {
    /// Whole runs: random flags (up to 20 retries, delays up to a minute, a total up to two, zeros
    /// included), attempts of random lengths, and the delay's random number drawn properly or
    /// as any bit pattern (NaN, infinities, negatives).
    @Test func attemptsDelaysAndTotalStayWithinTheFlags() async {
        await propertyCheck(
            count: 3000, input: Gen.int(in: 0...20), Gen.int(in: 0...60_000).array(of: 3),
            Gen.int(in: 0...5_000).array(of: 25), Gen.uint64().map { Double(bitPattern: $0) }.array(of: 25),
            Gen.double(in: 0..<1).array(of: 25)
        ) { retries, flags, lengths, hostileUnits, units in
            let policy = RetryPolicy(
                retries: retries, baseDelay: .milliseconds(flags[0]), maxDelay: .milliseconds(flags[1]),
                maxDuration: .milliseconds(flags[2] * 2))
            for unitsOfThisRun in [units, hostileUnits] {
                var elapsed = TimeSpan.zero
                var attempts = 0
                var starts: [TimeSpan] = []
                run: while true {
                    attempts += 1
                    starts.append(elapsed)
                    elapsed = elapsed + .milliseconds(lengths[(attempts - 1) % lengths.count])
                    let unit = unitsOfThisRun[(attempts - 1) % unitsOfThisRun.count]
                    switch policy.next(afterAttempt: attempts, elapsed: elapsed, unit: unit) {
                    case .success(let delay):
                        #expect(delay >= .zero && delay <= policy.delayCeiling(beforeRetry: attempts) && delay <= policy.maxDelay)
                        #expect(elapsed + delay <= policy.maxDuration)
                        elapsed = elapsed + delay
                    case .failure(let stop):
                        #expect(stop == (attempts > retries ? .attemptsExhausted : .durationExhausted))
                        break run
                    }
                }
                #expect(attempts <= retries + 1)
                // No attempt after the first starts past --max-duration.
                #expect(starts.dropFirst().allSatisfy { $0 <= policy.maxDuration })
            }
        }
    }

    @Test func theCeilingDoublesFromTheBaseAndNeverPassesTheCap() async {
        await propertyCheck(count: 2000, input: Gen.int(in: 0...100_000), Gen.int(in: 0...100_000), Gen.int(in: 1...10_000)) {
            base, cap, n in
            let policy = RetryPolicy(baseDelay: .milliseconds(base), maxDelay: .milliseconds(cap))
            let ceiling = policy.delayCeiling(beforeRetry: n)
            let next = policy.delayCeiling(beforeRetry: n + 1)
            #expect(ceiling <= .milliseconds(cap) && ceiling <= next)
            #expect(next == min(ceiling + ceiling, .milliseconds(cap)) || ceiling < .milliseconds(base))
            #expect(policy.delayCeiling(beforeRetry: 1) == min(.milliseconds(base), .milliseconds(cap)))
        }
    }

    /// Only a proven lock failure is retried: a non-zero exit with the watchdog's own cancel or a
    /// text of SQLSTATE 55P03 in the output; the scanner finds the same whatever the chunking.
    @Test func onlyProvenLockFailuresAreRetried() async {
        let pieces = [
            "ERROR:  ", "canceling statement due to lock timeout", "CANCELING STATEMENT DUE TO LOCK TIMEOUT", "55P03", "55p0",
            "3", "could not obtain lock", "could not obtain", " lock", "division by zero", "\n", "canceling statement due to user request",
            "lock timeout", "\u{0}", "é",
        ]
        await propertyCheck(
            count: 3000, input: Gen.int32(in: -3...300), Gen.bool(), Gen.int(in: 0...(pieces.count - 1)).array(of: 0...12),
            Gen.int(in: 1...64)
        ) { status, cancelled, picks, chunk in
            let output = Array(picks.map { pieces[$0] }.joined().utf8)
            let lower = String(decoding: output, as: UTF8.self).lowercased()
            let proof = LockFailureScanner.markers.contains { lower.contains($0) }
            let outcome = LockFailureClassifier.classify(exitStatus: status, cancelledLockWait: cancelled, output: output)
            switch outcome {
            case .succeeded: #expect(status == 0)
            case .lockFailure: #expect(status != 0 && (cancelled || proof))
            case .otherFailure: #expect(status != 0 && !cancelled && !proof)
            }
            var scanner = LockFailureScanner()
            var rest = output[...]
            while !rest.isEmpty {
                scanner.feed(rest.prefix(chunk))
                rest = rest.dropFirst(chunk)
            }
            #expect((scanner.marker != nil) == proof)
        }
    }
}
