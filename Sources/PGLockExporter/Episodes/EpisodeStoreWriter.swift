import Dispatch
import Logging
import Synchronization

/// Writes episode records into the `EpisodeStore` on one thread of its own, for every target of
/// the process, so that a slow or failing disk never stalls a sample.
///
/// `submit` only queues: records are coalesced by `id` (an ongoing episode written at every
/// sample takes one slot, holding its newest version), and the queue holds at most
/// `maximumPending` episodes; a record that finds it full is dropped and counted as a store
/// error (`pg_lock_exporter_episode_store_errors_total`, kind `queue full`). A write that fails
/// is counted there too and logged once per kind of failure (SQLite's message), not once per
/// record: a full disk would otherwise log at every sample of every target.
///
/// The same thread applies retention (`--episodes.retention`, `--episodes.retention.count`):
/// at start and every `pruneInterval`.
public final class EpisodeStoreWriter: Sendable {
    /// How long and how many episodes the store keeps; nil keeps them all by that bound.
    public struct Retention: Sendable, Equatable {
        public var maximumAge: TimeSpan?
        public var maximumCount: Int?

        public init(maximumAge: TimeSpan?, maximumCount: Int?) {
            self.maximumAge = maximumAge
            self.maximumCount = maximumCount
        }
    }

    /// Episodes waiting to be written; beyond this, new ones are dropped (and counted).
    public static let maximumPending = 10_000
    /// Retention runs this often (and once at start).
    public static let pruneInterval: Duration = .seconds(300)

    public let store: EpisodeStore
    public let retention: Retention
    private let logger: Logger

    private struct Queue {
        /// The newest version of each episode not yet written, and the order they first came in.
        var pending: [String: EpisodeRecord] = [:]
        var order: [String] = []
        var stopping = false
        /// Failure kinds already logged.
        var loggedKinds: Set<String> = []
    }

    private let queue = Mutex(Queue())
    private let errors = Atomic<Int>(0)
    private let written = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the writer thread; the first pruning runs on it at once.
    public init(store: EpisodeStore, retention: Retention, logger: Logger) {
        self.store = store
        self.retention = retention
        self.logger = logger
        DetachedThread.start { self.run() }
    }

    /// Queues `record` to be written (replacing a queued older version of it). Never blocks on
    /// the disk.
    public func submit(_ record: EpisodeRecord) {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.stopping else { return false }
            if queue.pending[record.id] == nil {
                guard queue.pending.count < Self.maximumPending else { return false }
                queue.order.append(record.id)
            }
            queue.pending[record.id] = record
            return true
        }
        if accepted {
            wake.signal()
        } else {
            fail(kind: "queue full", "episode store \(TerminalText.excerpt(store.path, limit: 200)): write queue full or closed, episode \(record.id) not written")
        }
    }

    /// Store writes (and queued records) that failed since start.
    public var errorCount: Int { errors.load(ordering: .relaxed) }

    /// Episodes queued and not yet taken by the writer thread.
    var pendingCount: Int { queue.withLock { $0.pending.count } }

    /// Records written since start.
    public var writtenCount: Int { written.load(ordering: .relaxed) }

    /// Writes what is queued, then stops the thread; waits at most `timeout` for it. Later
    /// `submit`s are dropped. Returns false when the thread did not finish in time.
    @discardableResult
    public func close(waitingAtMost timeout: TimeSpan) -> Bool {
        let first = queue.withLock { queue -> Bool in
            defer { queue.stopping = true }
            return !queue.stopping
        }
        guard first else { return true }
        wake.signal()
        return finished.wait(timeout: .now() + .milliseconds(Int(timeout.milliseconds))) == .success
    }

    /// `pg_lock_exporter_episode_store_errors_total`.
    func write(into w: inout ExpositionWriter) {
        w.family(
            "pg_lock_exporter_episode_store_errors_total", .counter,
            help: "Episode records that could not be written to --episodes.path (write failed, or the write queue was full).")
        w.sample("pg_lock_exporter_episode_store_errors_total", errorCount)
    }

    /// Ends as `unobserved` the episodes a previous process left ongoing (it stopped without
    /// ending them: a crash, SIGKILL, a power loss). Their end is the last sample that saw them
    /// (`started_at + duration_seconds`, as that process last wrote them). Synchronous, at start,
    /// before sampling begins. Returns how many.
    ///
    /// Ended rather than left ongoing, because nobody may ever see that root again (the exporter
    /// stays down, the target is removed), and an ongoing record would then claim so forever.
    /// When the new process does see the same root with the same earliest waiter, the episode
    /// gets the same id (`EpisodeRecord.id`) and its record replaces the unobserved one: it is
    /// resumed, ongoing again, `started_at` unchanged, its counts from the new process's samples.
    /// A root seen with a later first waiter (the earliest one left meanwhile) is a new episode.
    @discardableResult
    public static func endLeftOngoing(in store: EpisodeStore) throws(EpisodeStore.Error) -> Int {
        var ended = 0
        while true {
            let left = try store.episodes(ongoing: true, limit: 1000)
            if left.isEmpty { return ended }
            for var record in left {
                let end = EpisodeRecord.Timestamp(
                    microsecondsSinceEpoch: record.startedAt.microsecondsSinceEpoch + Int64((record.durationSeconds * 1_000_000).rounded()))
                record.ongoing = false
                record.end = .unobserved
                record.endedAt = end
                record.endCause = "exporter stopped without ending it"
                try store.upsert(record)
                ended += 1
            }
        }
    }

    // MARK: The thread

    private func run() {
        var nextPrune = ContinuousClock.now
        while true {
            if ContinuousClock.now >= nextPrune {
                prune()
                nextPrune = ContinuousClock.now + Self.pruneInterval
            }
            let left = TimeSpan(clamping: nextPrune - .now)
            _ = wake.wait(timeout: .now() + .milliseconds(max(1, Int(left.milliseconds))))
            let (batch, stopping) = queue.withLock { queue -> ([EpisodeRecord], Bool) in
                let batch = queue.order.compactMap { queue.pending[$0] }
                queue.pending.removeAll(keepingCapacity: true)
                queue.order.removeAll(keepingCapacity: true)
                return (batch, queue.stopping)
            }
            for record in batch {
                do {
                    try store.upsert(record)
                    written.add(1, ordering: .relaxed)
                } catch {
                    fail(kind: kind(of: error), "\(error)")
                }
            }
            if stopping && queue.withLock({ $0.pending.isEmpty }) {
                finished.signal()
                return
            }
        }
    }

    private func prune() {
        guard retention.maximumAge != nil || retention.maximumCount != nil else { return }
        let olderThan = retention.maximumAge.map {
            EpisodeRecord.Timestamp(microsecondsSinceEpoch: EpisodeRecord.Timestamp.now().microsecondsSinceEpoch - Int64($0.seconds * 1_000_000))
        }
        do {
            let deleted = try store.prune(olderThan: olderThan, keepAtMost: retention.maximumCount)
            if deleted > 0 { logger.info("episode store pruned", metadata: ["deleted": "\(deleted)"]) }
        } catch {
            fail(kind: "prune: " + kind(of: error), "\(error)")
        }
    }

    /// The failure without the store's path: SQLite's message (`disk I/O error`, `database or
    /// disk is full`, `attempt to write a readonly database`).
    private func kind(of error: EpisodeStore.Error) -> String {
        let prefix = "episode store \(TerminalText.excerpt(store.path, limit: 200)): "
        let text = error.description
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    private func fail(kind: String, _ message: String) {
        errors.add(1, ordering: .relaxed)
        let first = queue.withLock { queue -> Bool in
            guard queue.loggedKinds.count < 32 else { return false }
            return queue.loggedKinds.insert(kind).inserted
        }
        if first {
            logger.error("cannot write episode store (logged once per kind; pg_lock_exporter_episode_store_errors_total counts each)",
                         metadata: ["error": "\(message)"])
        }
    }
}
