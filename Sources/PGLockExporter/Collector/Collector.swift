import Logging
import Synchronization

/// The exporter's scrape path for one target: one connection, one collection at a time, shared
/// by concurrent scrapes, and the exposition of its result.
///
/// The connection is opened lazily and reopened after any connection error, so the exporter
/// starts while the server is down and recovers when it comes back. Every scrape answers; when
/// the server cannot be read it says `pg_up 0`.
public final class Collector: Sendable {
    /// The outcome of one collection, rendered once and shared by the scrapes that waited for it.
    public struct Collection: Sendable {
        public var snapshot: ActivitySnapshot?
        public var graph: BlockingGraph?
        /// The session metrics in exposition format (empty when the collection failed).
        public var exposition: [UInt8]
        public var error: String?
        public var durationSeconds: Double
    }

    public let settings: ConnectionSettings
    public let options: MetricOptions
    private let logger: Logger
    private let connection = Mutex<PostgresConnection?>(nil)
    private let flight = SingleFlight<Collection>()
    private let scrapeErrors = Atomic<Int>(0)
    private let collections = Atomic<Int>(0)
    private let wasUp = Atomic<Int>(-1)  // -1 unknown, 0 down, 1 up: log only transitions
    private let warnedHidden = Atomic<Bool>(false)
    /// Cancels the statement in flight (at shutdown), from another thread than the one blocked on it.
    private let canceller = Mutex<PostgresCanceller?>(nil)
    /// The server's settings, read on connect and then once a minute (`pg_settings` is the most
    /// expensive small statement of the batch and changes only on reload).
    private let settingsCache = Mutex<(settings: ServerSettings, read: ContinuousClock.Instant)?>(nil)
    static let settingsMaxAge = Duration.seconds(60)
    /// Counters kept by the background sampler (`--sample.interval`); nil when it is off.
    let sampler: SamplerCounters.Box?

    /// `sampleInterval` (seconds) turns on the counters kept by `sample()`.
    public init(settings: ConnectionSettings, options: MetricOptions = MetricOptions(), sampleInterval: Double? = nil, logger: Logger) {
        self.settings = settings
        self.options = options
        self.logger = logger
        self.sampler = sampleInterval.map { SamplerCounters.Box(interval: $0) }
    }

    /// A full scrape body: session metrics (or `pg_up 0`), then the exporter's own metrics.
    /// `timeoutSeconds` is Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` less a margin.
    /// With `processMetrics` false (a `/probe` of one target) the process's own metrics are left
    /// to `/metrics`.
    public func scrape(timeoutSeconds: Double?, processMetrics: Bool = true) -> [UInt8] {
        let budget = min(timeoutSeconds ?? .infinity, Double(settings.statementTimeoutMilliseconds) / 1000 + 1)
        let started = ContinuousClock.now
        let collection = flight.run(timeoutSeconds: budget) { collect(budgetSeconds: budget) }
        var w = ExpositionWriter(capacity: (collection?.exposition.count ?? 0) + 4096)
        let up = collection.map { $0.error == nil } ?? false
        if collection?.error != nil || collection == nil { scrapeErrors.add(1, ordering: .relaxed) }
        w.family("pg_up", .gauge, help: "1 if the last collection from PostgreSQL succeeded, else 0.")
        w.sample("pg_up", up ? 1 : 0)
        if let collection { w.append(contentsOf: collection.exposition) }
        let known = collection?.snapshot?.databases.map(\.datname) ?? []
        sampler?.counters.withLock { $0.write(into: &w, known: known) }
        writeScrapeMetrics(into: &w, scrapeSeconds: (ContinuousClock.now - started).seconds)
        if processMetrics { Self.writeProcessMetrics(into: &w) }
        return w.bytes
    }

    /// Collects now (the single-flight leader runs this).
    func collect(budgetSeconds: Double) -> Collection {
        collections.add(1, ordering: .relaxed)
        let started = ContinuousClock.now
        let timeoutMs = Int(min(Double(settings.statementTimeoutMilliseconds), budgetSeconds * 1000))
        do {
            let cached = settingsCache.withLock { cache in
                cache.flatMap { ContinuousClock.now - $0.read < Self.settingsMaxAge ? $0.settings : nil }
            }
            var snapshot = try connection.withLock { connection in
                try withConnection(&connection, budgetSeconds: budgetSeconds) { db in
                    try db.readPreparedSnapshot(settings: cached == nil, statementTimeoutMilliseconds: timeoutMs)
                }
            }
            if let cached {
                snapshot.settings = cached
            } else {
                settingsCache.withLock { $0 = (snapshot.settings, ContinuousClock.now) }
            }
            noteUp(snapshot)
            let graph = BlockingGraph(sessions: snapshot.sessions)
            var w = ExpositionWriter()
            SnapshotMetrics(snapshot: snapshot, graph: graph, options: options).write(into: &w)
            return Collection(
                snapshot: snapshot, graph: graph, exposition: w.bytes, error: nil,
                durationSeconds: (ContinuousClock.now - started).seconds)
        } catch {
            noteDown(error)
            return Collection(
                snapshot: nil, graph: nil, exposition: [], error: "\(error)",
                durationSeconds: (ContinuousClock.now - started).seconds)
        }
    }

    /// Runs `body` on the target's one connection, opening it first when needed and dropping it
    /// after a connection error so the next use reconnects. The caller holds the mutex.
    private func withConnection<T>(
        _ connection: inout PostgresConnection?, budgetSeconds: Double, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        if connection == nil || connection?.isHealthy == false {
            connection = nil
            canceller.withLock { $0 = nil }
            settingsCache.withLock { $0 = nil }  // a new connection may be a restarted, reconfigured server
            var attempt = settings
            attempt.connectTimeoutSeconds = min(settings.connectTimeoutSeconds, max(2, Int(budgetSeconds.rounded(.up))))
            let opened = try PostgresConnection(attempt)
            try opened.prepareSnapshotStatements()
            canceller.withLock { $0 = opened.makeCanceller() }
            connection = opened
        }
        do {
            return try body(connection!)
        } catch let error as PostgresError where error.kind == .connection {
            connection = nil
            canceller.withLock { $0 = nil }
            throw error
        }
    }

    /// One background sample of the cheap aggregates (`--sample.interval`), on the target's one
    /// connection. It never waits and never connects: while a scrape's collection holds the
    /// connection, or while the target is down (scrapes reconnect), the sample is skipped and its
    /// time is not attributed. So one sampler thread can serve every target.
    public func sample() {
        guard let sampler else { return }
        enum Outcome {
            case rows([(String, Int, Int)]), failed(Error), disconnected
        }
        let outcome: Outcome? = connection.withLockIfAvailable { connection in
            guard let db = connection, db.isHealthy else { return .disconnected }
            do {
                return .rows(
                    try withConnection(&connection, budgetSeconds: Double(settings.statementTimeoutMilliseconds) / 1000) { db in
                        try db.execute(SamplerCounters.sql) { r in
                            (0..<r.rowCount).map { (r.string($0, 0) ?? "", r.int($0, 1) ?? 0, r.int($0, 2) ?? 0) }
                        }
                    })
            } catch {
                return .failed(error)
            }
        }
        switch outcome {
        case .rows(let rows)?:
            sampler.counters.withLock { $0.record(rows, at: ContinuousClock.now) }
        case .failed(let error)?:
            sampler.counters.withLock { $0.gap() }
            logger.debug("sample failed", metadata: ["error": "\(error)"])
        case .disconnected?:
            sampler.counters.withLock { $0.gap() }  // the outage is nobody's blocked time
        case nil:
            break  // a scrape holds the connection: the next sample covers this interval
        }
    }

    /// Cancels a statement in flight, so shutdown does not wait for the statement timeout.
    public func cancelRunningQuery() {
        canceller.withLock { $0?.cancel() }
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
        if wasUp.exchange(0, ordering: .relaxed) != 0 {
            logger.error("cannot read PostgreSQL", metadata: ["error": "\(error)", "dsn": "\(ConnectionString.redacted(settings.dsn))"])
        } else {
            logger.debug("cannot read PostgreSQL", metadata: ["error": "\(error)"])
        }
    }

    private func writeScrapeMetrics(into w: inout ExpositionWriter, scrapeSeconds: Double) {
        w.family("pg_lock_exporter_scrape_duration_seconds", .gauge, help: "Time this scrape took, including waiting for a shared collection.")
        w.sample("pg_lock_exporter_scrape_duration_seconds", scrapeSeconds)
        w.family("pg_lock_exporter_scrape_errors_total", .counter, help: "Scrapes that could not read PostgreSQL.")
        w.sample("pg_lock_exporter_scrape_errors_total", scrapeErrors.load(ordering: .relaxed))
        w.family("pg_lock_exporter_collections_total", .counter, help: "Collections run against PostgreSQL; concurrent scrapes share one.")
        w.sample("pg_lock_exporter_collections_total", collections.load(ordering: .relaxed))
    }

    /// The process's own metrics: build info and `process_*`.
    public static func writeProcessMetrics(into w: inout ExpositionWriter) {
        w.family("pg_lock_exporter_build_info", .gauge, help: "The exporter's version; always 1.")
        w.sample("pg_lock_exporter_build_info", ["version": BuildInfo.version], 1)
        ProcessMetrics.write(into: &w)
    }

    /// Closes the connection (at shutdown).
    public func close() {
        connection.withLock { $0 = nil }
        canceller.withLock { $0 = nil }
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
