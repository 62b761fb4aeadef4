import PGLockExporter

/// `migrate`'s lock-failure classifier over a child's output (any bytes a migration tool
/// prints). The first byte picks a chunk size. Invariants: output read in chunks gives the same
/// verdict (retried or not) as read whole (a marker split across chunks is still found); an exit status of 0 is
/// never a failure; without the watchdog's cancel, a lock failure needs one of the markers.
enum LockFailureTarget {
    static let target = FuzzTarget(name: "lock-failure") { bytes in
        guard let first = bytes.first else { return }
        let output = Array(bytes.dropFirst())
        let chunk = Int(first % 64) + 1
        var scanner = LockFailureScanner()
        var start = 0
        while start < output.count {
            scanner.feed(output[start..<min(output.count, start + chunk)])
            start += chunk
        }
        let whole = LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, output: output)
        let chunked = LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, outputMarker: scanner.marker)
        // The verdict must agree; the reason may name another marker (the first one seen in a
        // stream, the first listed when read whole).
        FuzzCheck.require((whole == .otherFailure) == (chunked == .otherFailure), "whole \(whole), in chunks of \(chunk) \(chunked)")
        let lower = String(decoding: output, as: UTF8.self).lowercased()
        let hasMarker = LockFailureScanner.markers.contains { lower.contains($0) }
        FuzzCheck.require((whole != .otherFailure) == hasMarker, "verdict \(whole) with marker present: \(hasMarker)")
        FuzzCheck.require(LockFailureClassifier.classify(exitStatus: 0, cancelledLockWait: true, output: output) == .succeeded, "exit 0 failed")
    }
}
