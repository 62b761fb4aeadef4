import Synchronization

/// Bytes of request bodies buffered across all of a server's connections, against a total cap
/// (`HTTPServerLimits.maxTotalBodyBytes`): the per-connection cap alone lets every connection
/// hold that much at once. A body books its bytes before they are stored (its whole announced
/// length at the header stage) and gives them back when its request ends.
final class BodyBudget: Sendable {
    let capacity: Int
    private let used = Mutex(0)

    init(capacity: Int) { self.capacity = capacity }

    /// Books `bytes` if they fit; false (nothing booked) if not.
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { used in
            guard bytes >= 0, bytes <= capacity - used else { return false }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        used.withLock { $0 = max(0, $0 - bytes) }
    }

    var inUse: Int { used.withLock { $0 } }
}
