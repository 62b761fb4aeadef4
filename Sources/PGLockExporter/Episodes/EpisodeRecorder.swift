import Logging

/// What `serve` decides about episodes (issue 20), per target.
public struct EpisodeSettings: Sendable {
    /// The target's name (`--config.file`), or the single target's (`default`).
    public var target: String
    /// `--episodes.query-text`.
    public var queryText: QueryText.Policy
    /// `--episodes.log-after`: an episode is logged once it has lasted this long.
    public var logAfter: TimeSpan
    /// `--episodes.path`, shared by every target of the process.
    public var store: EpisodeStore

    public init(target: String, queryText: QueryText.Policy, logAfter: TimeSpan, store: EpisodeStore) {
        self.target = target
        self.queryText = queryText
        self.logAfter = logAfter
        self.store = store
    }
}

/// One target's blocking episodes: turns detailed samples into episode records, writes them to the
/// store, logs their start and end, and counts them for `/metrics`.
///
/// The sampler calls it from one thread at a time per target (SEAM: the lead's interface between
/// the sampling engine and episode tracking; the tracking itself is still to be written).
public final class EpisodeRecorder: Sendable {
    public let settings: EpisodeSettings
    private let logger: Logger

    public init(settings: EpisodeSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// True while an episode is ongoing: the sampler then reads a detailed sample even when the
    /// cheap aggregate shows nothing blocked, so that the episode's end can be classified.
    public var needsDetail: Bool { false }

    /// A detailed sample (`SnapshotBatch.episodeSample`), whose statements were sent at `sentAt`
    /// (the exporter's wall clock; waits are ages on the server, so `sentAt - age` is their start).
    public func observe(_ snapshot: ActivitySnapshot, sentAt: EpisodeRecord.Timestamp) {}

    /// A cheap sample saw nothing blocked in any database, and no episode was ongoing.
    public func observeQuiet(at time: EpisodeRecord.Timestamp) {}

    /// A sample failed, or the target is down or unreachable.
    public func lostSight(at time: EpisodeRecord.Timestamp) {}

    /// The exporter stops: ongoing episodes end as `unobserved`.
    public func stop(at time: EpisodeRecord.Timestamp) {}

    /// The episode metrics of this target; `known` are the databases of the last collection.
    func write(into w: inout ExpositionWriter, known: [String]) {}
}

extension SnapshotBatch {
    /// The detailed sample an episode needs, read only while something is blocked (or an episode
    /// is ongoing): every session with its identity and statement, the locks each waiter wants,
    /// the databases' session counters (why a root ended), the settings and role settings (the
    /// root's guard). Sent as text, not prepared: it runs only during blocking.
    public static func episodeSample(serverVersion: Int) -> SnapshotBatch {
        SnapshotBatch(
            serverVersion: serverVersion, queryCharacters: QueryText.maximumStatementBytes, lockDetails: true, identity: true,
            settings: true, roleSettings: true)
    }
}
