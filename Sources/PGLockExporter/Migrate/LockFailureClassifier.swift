/// Tells a failed attempt that lost on a lock (retried) from any other failure (not retried).
///
/// Only proof counts: the watchdog itself cancelled one of the attempt's lock waits (and the
/// attempt then failed), or the child's output carries one of the texts of SQLSTATE 55P03
/// (`lock_not_available`): the code itself, the server's `canceling statement due to lock
/// timeout`, or its `could not obtain lock` (NOWAIT). A wait the watchdog merely saw is no
/// proof: a migration that waited, got its lock and then failed on something else (a SQL error
/// after statements that already committed) is not run again.
public enum LockFailureClassifier {
    public enum Outcome: Sendable, Equatable {
        case succeeded
        /// Retried; the reason says which proof was seen.
        case lockFailure(String)
        /// Not retried: the guard exits with the child's status.
        case otherFailure
    }

    public static func classify(exitStatus: Int32, cancelledLockWait: Bool, outputMarker: String?) -> Outcome {
        if exitStatus == 0 { return .succeeded }
        if cancelledLockWait { return .lockFailure("the watchdog cancelled its lock wait") }
        if let outputMarker { return .lockFailure("its output says \"\(outputMarker)\"") }
        return .otherFailure
    }

    /// The same decision from the child's whole output (stdout and stderr as they came). Pure:
    /// a fuzz target's entry point.
    public static func classify(exitStatus: Int32, cancelledLockWait: Bool, output: some Collection<UInt8>) -> Outcome {
        var scanner = LockFailureScanner()
        scanner.feed(output)
        return classify(exitStatus: exitStatus, cancelledLockWait: cancelledLockWait, outputMarker: scanner.marker)
    }
}

/// Scans a stream of output, in chunks as they arrive, for the lock-failure texts. A text split
/// across two chunks is still found: the end of each chunk is kept for the next.
public struct LockFailureScanner: Sendable {
    /// What is looked for, lower case; matched without regard to case.
    public static let markers = ["55p03", "canceling statement due to lock timeout", "could not obtain lock"]
    private static let keep = markers.map(\.utf8.count).max()! - 1

    /// The first marker seen, as listed in `markers`.
    public private(set) var marker: String?
    private var tail: [UInt8] = []

    public init() {}

    public mutating func feed<Bytes: Collection>(_ chunk: Bytes) where Bytes.Element == UInt8 {
        guard marker == nil else { return }
        var window = tail
        window.reserveCapacity(tail.count + chunk.count)
        for byte in chunk { window.append(byte >= 65 && byte <= 90 ? byte + 32 : byte) }
        for candidate in Self.markers where Self.contains(window, Array(candidate.utf8)) {
            marker = candidate == "55p03" ? "55P03" : candidate
            return
        }
        tail = Array(window.suffix(Self.keep))
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        var start = 0
        while start + needle.count <= haystack.count {
            if haystack[start] == needle[0] && haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
            start += 1
        }
        return false
    }
}
