import Logging
import Synchronization

/// What `serve` decides about episodes (issue 20), per target.
public struct EpisodeSettings: Sendable {
    /// The target name of the single target (`--dsn`), in records and log events.
    public static let singleTarget = "default"

    /// The target's name (`--config.file`), or the single target's (`default`).
    public var target: String
    /// `--episodes.query-text`.
    public var queryText: QueryText.Policy
    /// `--episodes.log-after`: an episode is logged once it has lasted this long.
    public var logAfter: TimeSpan
    /// Writes records into `--episodes.path`; one for the whole process, shared by every target.
    public var writer: EpisodeStoreWriter
    /// `--episodes.path`, shared by every target of the process.
    public var store: EpisodeStore { writer.store }

    /// `writer` is the process's one store writer.
    public init(target: String, queryText: QueryText.Policy, logAfter: TimeSpan, writer: EpisodeStoreWriter) {
        self.target = target
        self.queryText = queryText
        self.logAfter = logAfter
        self.writer = writer
    }

    /// With a writer of its own for `store` (a thread, no retention): for one target alone.
    /// Several targets share one writer (`init(target:queryText:logAfter:writer:)`).
    public init(target: String, queryText: QueryText.Policy, logAfter: TimeSpan, store: EpisodeStore, logger: Logger) {
        self.init(
            target: target, queryText: queryText, logAfter: logAfter,
            writer: EpisodeStoreWriter(store: store, retention: .init(maximumAge: nil, maximumCount: nil), logger: logger))
    }
}

/// One target's blocking episodes: turns detailed samples into episode records (`EpisodeTracker`),
/// hands them to the store writer, logs their start and end, and counts them for `/metrics`.
///
/// The sampler calls it from one thread at a time per target; scrapes read its metrics from
/// others. Everything is under one lock, held for the tracking of one sample (no I/O: records go
/// to the writer's queue, log lines are written after the lock is released).
///
/// **Log events** (`--log.format`), message and `event` key:
/// - `blocking episode started` / `blocking_episode_started`: at the first sample at which the
///   episode has lasted `--episodes.log-after` (its duration counts from the first waiter's
///   `waitstart`, so an episode already that old when first sampled is logged at once);
/// - `blocking episode ended` / `blocking_episode_ended`: for every episode whose start was
///   logged, and for one that ended at least `--episodes.log-after` long without its start
///   being logged (it began and ended between two samples). An episode shorter than
///   `--episodes.log-after` is not logged at all: it is in the store and the metrics, and the
///   log stays free of the sub-second lock queues a busy server has all day.
/// Fields: `id`, `target`, `datname`, `started_at`, `root_pid` (0 and `root_gid` for a prepared
/// transaction), `root_usename`, `root_application_name`, `root_client_addr` (and behind a
/// configured PgBouncer `root_pgbouncer_client`, `ADDR:PORT`, and `root_pgbouncer`), `query` (as
/// `--episodes.query-text` renders it; absent under `none`), `blocked` (the most sessions blocked
/// at once so far), `blocked_total`, `duration_seconds`, and at the end `end` and `end_cause`.
public final class EpisodeRecorder: Sendable {
    public let settings: EpisodeSettings
    private let logger: Logger

    private struct State: Sendable {
        var tracker: EpisodeTracker
        var metrics = EpisodeMetrics()
        /// Episodes whose start was logged.
        var logged: Set<String> = []
        /// After `stop`: samples still in flight are ignored.
        var stopped = false
        /// Mirrors `!tracker.ongoing.isEmpty`, readable without the tracker.
        var hasOngoing = false
    }

    private let state: Mutex<State>

    public init(settings: EpisodeSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.state = Mutex(State(tracker: EpisodeTracker(target: settings.target, queryText: settings.queryText)))
    }

    /// True while an episode is ongoing: the sampler then reads a detailed sample even when the
    /// cheap aggregate shows nothing blocked, so that the episode's end can be classified.
    public var needsDetail: Bool { state.withLock { $0.hasOngoing } }

    /// A detailed sample (`SnapshotBatch.episodeSample`), whose statements were sent at `sentAt`
    /// (the exporter's wall clock; waits are ages on the server, so `sentAt - age` is their start).
    public func observe(_ snapshot: ActivitySnapshot, sentAt: EpisodeRecord.Timestamp) {
        let graph = BlockingGraph(sessions: snapshot.sessions)
        apply { $0.observe(snapshot, graph: graph, sentAt: sentAt) }
    }

    /// A cheap sample saw nothing blocked in any database, and no episode was ongoing.
    public func observeQuiet(at time: EpisodeRecord.Timestamp) {}

    /// A sample failed, or the target is down or unreachable.
    public func lostSight(at time: EpisodeRecord.Timestamp) {
        apply { $0.lostSight(at: time) }
    }

    /// The exporter stops: ongoing episodes end as `unobserved`; later samples are ignored.
    public func stop(at time: EpisodeRecord.Timestamp) {
        apply(stopping: true) { $0.stop(at: time) }
    }

    /// The episode metrics of this target; `known` are the databases of the last collection.
    func write(into w: inout ExpositionWriter, known: [String]) {
        let (metrics, ongoing) = state.withLock { ($0.metrics, $0.tracker.ongoing) }
        metrics.write(into: &w, known: known, ongoing: ongoing)
        settings.writer.write(into: &w)
    }

    /// Runs one step of the tracker and applies its changes: metrics under the lock; records to
    /// the writer and lines to the log after it.
    private func apply(stopping: Bool = false, _ step: (inout EpisodeTracker) -> [EpisodeChange]) {
        let logAfter = settings.logAfter.seconds
        let (changes, events) = state.withLock { state -> ([EpisodeChange], [LogEvent]) in
            guard !state.stopped else { return ([], []) }
            if stopping { state.stopped = true }
            let changes = step(&state.tracker)
            var events: [LogEvent] = []
            for change in changes {
                switch change {
                case .started(let record), .updated(let record):
                    // A loss of sight no longer ends an episode the tracker may see again (it goes
                    // on, blind, for `EpisodeTracker.blindGrace`), so every start is a new one.
                    if case .started = change { state.metrics.started(record) }
                    if record.durationSeconds >= logAfter, state.logged.insert(record.id).inserted {
                        events.append(.started(record))
                    }
                case .ended(let record):
                    state.metrics.ended(record)
                    if state.logged.remove(record.id) != nil || record.durationSeconds >= logAfter {
                        events.append(.ended(record))
                    }
                }
            }
            state.hasOngoing = !state.tracker.ongoing.isEmpty
            return (changes, events)
        }
        for change in changes {
            switch change {
            case .started(let record), .updated(let record), .ended(let record): settings.writer.submit(record)
            }
        }
        for event in events { event.log(to: logger) }
    }

    /// A log line to write once the lock is released.
    private enum LogEvent {
        case started(EpisodeRecord), ended(EpisodeRecord)

        func log(to logger: Logger) {
            switch self {
            case .started(let record):
                logger.info("blocking episode started", metadata: Self.fields(record, event: "blocking_episode_started"))
            case .ended(let record):
                var fields = Self.fields(record, event: "blocking_episode_ended")
                fields["end"] = "\(record.end?.rawValue ?? EpisodeRecord.End.unobserved.rawValue)"
                if let cause = record.endCause { fields["end_cause"] = "\(cause)" }
                if let ended = record.endedAt { fields["ended_at"] = "\(ended)" }
                logger.info("blocking episode ended", metadata: fields)
            }
        }

        static func fields(_ record: EpisodeRecord, event: String) -> Logger.Metadata {
            var fields: Logger.Metadata = [
                "event": "\(event)", "id": "\(record.id)", "target": "\(record.target)", "datname": "\(record.datname)",
                "started_at": "\(record.startedAt)", "root_pid": "\(record.root.pid ?? 0)",
                "blocked": "\(record.peakBlocked)", "blocked_total": "\(record.blockedTotal)",
                "duration_seconds": "\((record.durationSeconds * 1000).rounded() / 1000)",
            ]
            if let gid = record.root.gid { fields["root_gid"] = "\(gid)" }
            if let usename = record.root.usename { fields["root_usename"] = "\(usename)" }
            if let application = record.root.applicationName { fields["root_application_name"] = "\(application)" }
            if let client = record.root.clientAddr { fields["root_client_addr"] = "\(client)" }
            if let pooled = record.root.pgbouncerClient {
                fields["root_pgbouncer_client"] = "\(pooled.endpoint)"
                fields["root_pgbouncer"] = "\(pooled.pgbouncer)"
            }
            if let query = record.root.query { fields["query"] = "\(query)" }
            return fields
        }
    }
}

extension SnapshotBatch {
    /// The detailed sample an episode needs, read only while something is blocked (or an episode
    /// is ongoing): every session with its identity and statement, each waiter's lock (mode,
    /// kind and relation, from the one `pg_locks` read a scrape makes: the lock-details statement
    /// `check` sends read `pg_locks` again and cost the server 35 ms a second at 750 sessions with
    /// 250 blocked, `make bench`), the databases' session counters (why a root ended), the
    /// settings and role settings (the root's guard). Sent as text, not prepared: it runs only
    /// during blocking.
    public static func episodeSample(serverVersion: Int) -> SnapshotBatch {
        SnapshotBatch(
            serverVersion: serverVersion, queryCharacters: QueryText.maximumStatementBytes, lockDetails: false, identity: true,
            settings: true, roleSettings: true)
    }
}
