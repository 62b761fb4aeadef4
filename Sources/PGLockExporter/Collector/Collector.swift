import Logging
import Synchronization

/// The exporter's scrape path for one target: one connection, one collection at a time, shared
/// by concurrent scrapes, and the exposition of its result.
///
/// Every scrape answers within its budget. The connection is opened lazily and reopened after
/// any connection error or timeout, so the exporter starts while the server is down and
/// recovers when it comes back; while the server cannot be read in time, scrapes say `pg_up 0`
/// and count the reason in `pg_lock_exporter_collection_failures_total`.
public final class Collector: Sendable {
    /// The outcome of one collection, rendered once and shared by the scrapes that waited for it.
    struct Collection: Sendable {
        var snapshot: ActivitySnapshot?
        /// The session metrics in exposition format (empty when the collection failed).
        var exposition: [UInt8]
        var failed: Bool
        /// Read for a page (`/tree`): the snapshot also has statements and the locks on contended
        /// objects. A scrape that joins such a collection uses its metrics like any other.
        var detailed = false
        /// When the collection was read (wall clock), and why it failed, for the page.
        var readAt = EpisodeRecord.Timestamp.now()
        var failure: String?
    }

    /// Characters of each statement a page's collection reads (a page shows them; scrapes never do).
    static let pageQueryCharacters = 1024

    public let settings: ConnectionSettings
    public let options: MetricOptions
    let logger: Logger
    let target = TargetConnection()
    private let flight = SingleFlight<Collection>()
    private let scrapeErrors = Atomic<Int>(0)
    private let collections = Atomic<Int>(0)
    private let failures = Mutex<[CollectionFailure: Int]>([:])
    private let wasUp = Atomic<Int>(-1)  // -1 unknown, 0 down, 1 up: log only transitions
    private let warnedHidden = Atomic<Bool>(false)
    /// Cancels the statement in flight (at shutdown), from another thread than the one waiting on it.
    private let canceller = Mutex<PostgresCanceller?>(nil)
    /// `pg_settings` is re-read this often on one connection: it is the most expensive small
    /// statement of the batch and changes only on reload.
    static let settingsMaxAge = Duration.seconds(60)
    /// Counters kept by the background sampler (`--sample.interval`); nil when it is off.
    let sampler: SamplerCounters.Box?
    /// Blocking episodes, kept from the background samples; nil when sampling is off.
    public let episodes: EpisodeRecorder?
    /// The PgBouncers in front of the target (`--pgbouncer.dsn`); nil without any.
    public let poolers: TargetPoolers?
    /// Where people open this target's pages (`--web.external-url`): nil when it is not set.
    public let pageLinks: PageLinks?

    /// `sampleInterval` turns on the counters kept by `sample()`; `episodes` (with a sample
    /// interval) turns on episode recording.
    public init(
        settings: ConnectionSettings, options: MetricOptions = MetricOptions(), sampleInterval: TimeSpan? = nil,
        episodes: EpisodeSettings? = nil, poolers: TargetPoolers? = nil, pageLinks: PageLinks? = nil, logger: Logger
    ) {
        self.poolers = poolers
        self.pageLinks = pageLinks
        var settings = settings
        settings.cancelGate = settings.cancelGate ?? CancelGate()
        self.settings = settings
        self.options = options
        self.logger = logger
        self.sampler = sampleInterval.map { SamplerCounters.Box(interval: $0.seconds) }
        self.episodes = sampleInterval == nil ? nil : episodes.map { EpisodeRecorder(settings: $0, logger: logger) }
    }

    /// A full scrape body, within `budget`: session metrics (or `pg_up 0`), then the
    /// exporter's own metrics. With `processMetrics` false (a `/probe` of one target) the
    /// process's own metrics are left to `/metrics`; build info is in both.
    public func scrape(budget: TimeSpan, processMetrics: Bool = true) -> [UInt8] {
        let started = ContinuousClock.now
        let deadline = Deadline.after(budget)
        // The leader collects under its own deadline; scrapes that join wait up to theirs.
        let collection = flight.run(timeout: budget) { collect(until: deadline) }
        var w = ExpositionWriter(capacity: (collection?.exposition.count ?? 0) + 4096)
        let up = collection.map { !$0.failed } ?? false
        if !up { scrapeErrors.add(1, ordering: .relaxed) }
        w.family("pg_up", .gauge, help: "1 if the last collection from PostgreSQL succeeded, else 0.")
        w.sample("pg_up", up ? 1 : 0)
        if let collection { w.append(contentsOf: collection.exposition) }
        let known = collection?.snapshot?.databases.map(\.datname) ?? []
        sampler?.counters.withLock { $0.write(into: &w, known: known) }
        episodes?.write(into: &w, known: known)
        writeScrapeMetrics(into: &w, scrapeSeconds: (ContinuousClock.now - started).seconds)
        // Every body about a target names the exporter, so the alerting rules can tell its pg_up
        // from other exporters' in both modes; process_* describe the process, not the target.
        if processMetrics { Self.writeProcessMetrics(into: &w) } else { Self.writeBuildInfo(into: &w) }
        pageLinks?.write(into: &w)
        return w.bytes
    }

    /// One scrape on a thread of its own, the caller going on at once: `serve`'s start-up
    /// collection, which shows a wrong DSN in the log at once. On the caller's thread it kept
    /// SIGTERM waiting for as long as a server that never answers took to time out.
    public func scrapeInBackground(budget: TimeSpan) {
        DetachedThread.start { _ = self.scrape(budget: budget) }
    }

    /// The snapshot a page draws (`/tree`), within `budget`: with statements and lock details,
    /// shared with concurrent scrapes (single-flight, on the target's one connection). A page that
    /// arrives while a scrape's collection runs waits for it, then reads its own detailed one.
    public func pageSnapshot(budget: TimeSpan) -> (snapshot: ActivitySnapshot?, readAt: EpisodeRecord.Timestamp, failure: String?) {
        let deadline = Deadline.after(budget)
        for _ in 0..<2 {
            guard let collection = flight.run(timeout: deadline.remaining, { collect(until: deadline, detailed: true) }) else { break }
            if collection.detailed || collection.failed { return (collection.snapshot, collection.readAt, collection.failure) }
        }
        return (nil, .now(), "PostgreSQL could not be read within \(budget)")
    }

    /// Collects now, before `deadline` (the single-flight leader runs this).
    func collect(until deadline: Deadline, detailed: Bool = false) -> Collection {
        collections.add(1, ordering: .relaxed)
        // Connecting is bounded by the connect timeout from when the scrape asked for the
        // connection: a scrape that waited while the sampler tried to connect has had that attempt,
        // and does not start a second one of its own (a target that never answers took two).
        let connectDeadline = Deadline.after(seconds: settings.connectTimeoutSeconds).capped(at: deadline)
        // The poolers are read while PostgreSQL is: a slow one costs the scrape nothing more,
        // and the two views are taken at nearly the same moment.
        let pending = poolers?.startReading(until: deadline)
        do {
            let readAt = EpisodeRecord.Timestamp.now()
            var snapshot = try target.withState(until: deadline) { state in
                try read(&state, deadline: deadline, connectDeadline: connectDeadline, detailed: detailed)
            }
            noteUp(snapshot)
            var w = ExpositionWriter()
            if let poolers, let readings = pending?.wait() {
                poolers.remember(readings)
                PoolerJoin.attach(readings.compactMap(\.listing), to: &snapshot.sessions)
                poolers.write(readings, into: &w)
            }
            SnapshotMetrics(snapshot: snapshot, graph: BlockingGraph(sessions: snapshot.sessions), options: options).write(into: &w)
            return Collection(snapshot: snapshot, exposition: w.bytes, failed: false, detailed: detailed, readAt: readAt)
        } catch {
            failures.withLock { $0[CollectionFailure(error), default: 0] += 1 }
            noteDown(error)
            // The poolers' own health is reported even while PostgreSQL cannot be read.
            var w = ExpositionWriter()
            if let poolers, let readings = pending?.wait() { poolers.write(readings, into: &w) }
            return Collection(snapshot: nil, exposition: w.bytes, failed: true, detailed: detailed, failure: PostgresError.oneLine("\(error)"))
        }
    }

    /// One snapshot on the target's connection, opening (and preparing) it first when needed.
    /// A connection error or a timeout drops the connection and everything learnt on it.
    private func read(
        _ state: inout TargetConnection.State?, deadline: Deadline, connectDeadline: Deadline, detailed: Bool
    ) throws -> ActivitySnapshot {
        if state?.connection.isHealthy != true { try connect(&state, deadline: deadline, connectDeadline: connectDeadline) }
        let connection = state!.connection
        // The server-side timeout fits in what is left once the connection is ready, so the
        // server cancels a slow statement itself and the connection survives; the client
        // deadline is the backstop.
        let statementTimeoutMilliseconds = min(settings.statementTimeoutMilliseconds, deadline.remaining.milliseconds)
        let cached = state!.settingsRead.map { ContinuousClock.now - $0 < Self.settingsMaxAge } == true ? state!.settings : nil
        do {
            var snapshot: ActivitySnapshot
            if detailed {
                // A page's: the same statements with the statements' text and the locks on
                // contended objects (what `check` reads), sent as text: they are not prepared.
                snapshot = try SnapshotBatch(
                    serverVersion: connection.serverVersion, queryCharacters: Self.pageQueryCharacters, lockDetails: true, identity: false,
                    settings: cached == nil, roleSettings: true
                ).read(on: connection, statementTimeoutMilliseconds: statementTimeoutMilliseconds, deadline: deadline)
            } else {
                snapshot = try SnapshotBatch(
                    serverVersion: connection.serverVersion, identity: false, settings: cached == nil, roleSettings: true)
                    .readPrepared(on: connection, statementTimeoutMilliseconds: statementTimeoutMilliseconds, deadline: deadline)
            }
            if let cached {
                snapshot.settings = cached
            } else {
                state!.settings = snapshot.settings
                state!.settingsRead = .now
            }
            return snapshot
        } catch let error as PostgresError where error.dropsConnection || !connection.isHealthy {
            forget(&state)
            throw error
        }
    }

    /// Opens (by `connectDeadline`, default `deadline`) and prepares (by `deadline`) a new
    /// connection in place of whatever `state` held.
    func connect(_ state: inout TargetConnection.State?, deadline: Deadline, connectDeadline: Deadline? = nil) throws {
        forget(&state)
        let opened = try PostgresConnection(settings, deadline: connectDeadline ?? deadline)
        try SnapshotBatch(serverVersion: opened.serverVersion, identity: false, settings: true, roleSettings: true)
            .prepare(on: opened, deadline: deadline)
        canceller.withLock { $0 = opened.makeCanceller() }
        state = TargetConnection.State(connection: opened)
    }

    /// Drops the connection and everything learnt on it; the next collection reconnects.
    func forget(_ state: inout TargetConnection.State?) {
        state = nil
        canceller.withLock { $0 = nil }
    }

    /// Cancels a statement in flight (at shutdown), waiting at most half a second for the
    /// request to get through.
    public func cancelRunningQuery() {
        canceller.withLock { $0 }?.cancel(waitingAtMost: .milliseconds(500))
    }

    private func noteUp(_ snapshot: ActivitySnapshot) {
        if wasUp.exchange(1, ordering: .relaxed) != 1 {
            logger.info(
                "connected to PostgreSQL",
                metadata: ["server_version": "\(snapshot.settings.versionString)", "dsn": "\(ConnectionString.redacted(settings.dsn))"])
        }
        if snapshot.hasHiddenSessions && !warnedHidden.exchange(true, ordering: .relaxed) {
            logger.warning(
                "some sessions' state is hidden: grant pg_monitor (or pg_read_all_stats) to the exporter's role; they are counted as state=\"unknown\"")
        }
    }

    private func noteDown(_ error: Error) {
        let reason = CollectionFailure(error).rawValue
        if wasUp.exchange(0, ordering: .relaxed) != 0 {
            logger.error(
                "cannot read PostgreSQL",
                metadata: ["reason": "\(reason)", "error": "\(error)", "dsn": "\(ConnectionString.redacted(settings.dsn))"])
        } else {
            logger.debug("cannot read PostgreSQL", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }

    private func writeScrapeMetrics(into w: inout ExpositionWriter, scrapeSeconds: Double) {
        w.family("pg_lock_exporter_scrape_duration_seconds", .gauge, help: "Time this scrape took, including waiting for a shared collection.")
        w.sample("pg_lock_exporter_scrape_duration_seconds", scrapeSeconds)
        w.family("pg_lock_exporter_scrape_errors_total", .counter, help: "Scrapes that could not read PostgreSQL.")
        w.sample("pg_lock_exporter_scrape_errors_total", scrapeErrors.load(ordering: .relaxed))
        w.family("pg_lock_exporter_collections_total", .counter, help: "Collections run against PostgreSQL; concurrent scrapes share one.")
        w.sample("pg_lock_exporter_collections_total", collections.load(ordering: .relaxed))
        let failed = failures.withLock { $0 }
        w.family(
            "pg_lock_exporter_collection_failures_total", .counter,
            help: "Collections that failed, by reason: timeout, connect, auth or query.")
        for reason in CollectionFailure.allCases {
            w.sample("pg_lock_exporter_collection_failures_total", ["reason": reason.rawValue], failed[reason] ?? 0)
        }
    }

    /// The process's own metrics: build info and `process_*`.
    public static func writeProcessMetrics(into w: inout ExpositionWriter) {
        writeBuildInfo(into: &w)
        ProcessMetrics.write(into: &w)
    }

    /// `pg_lock_exporter_build_info`: in every body the binary serves.
    static func writeBuildInfo(into w: inout ExpositionWriter) {
        w.family("pg_lock_exporter_build_info", .gauge, help: "The exporter's version; always 1.")
        w.sample("pg_lock_exporter_build_info", ["version": BuildInfo.version], 1)
    }

    /// Closes the connection (at shutdown), unless a scrape still holds it.
    public func close() {
        poolers?.close()
        _ = target.withStateIfAvailable { $0 = nil }
        canceller.withLock { $0 = nil }
    }
}
