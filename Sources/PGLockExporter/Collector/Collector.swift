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

    public init(settings: ConnectionSettings, options: MetricOptions = MetricOptions(), logger: Logger) {
        self.settings = settings
        self.options = options
        self.logger = logger
    }

    /// A full scrape body: session metrics (or `pg_up 0`), then the exporter's own metrics.
    /// `timeoutSeconds` is Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` less a margin.
    public func scrape(timeoutSeconds: Double?) -> [UInt8] {
        let budget = min(timeoutSeconds ?? .infinity, Double(settings.statementTimeoutMilliseconds) / 1000 + 1)
        let started = ContinuousClock.now
        let collection = flight.run(timeoutSeconds: budget) { collect(budgetSeconds: budget) }
        var w = ExpositionWriter(capacity: (collection?.exposition.count ?? 0) + 4096)
        let up = collection.map { $0.error == nil } ?? false
        if collection?.error != nil || collection == nil { scrapeErrors.add(1, ordering: .relaxed) }
        w.family("pg_up", .gauge, help: "1 if the last collection from PostgreSQL succeeded, else 0.")
        w.sample("pg_up", up ? 1 : 0)
        if let collection { w.append(contentsOf: collection.exposition) }
        writeOwnMetrics(into: &w, scrapeSeconds: (ContinuousClock.now - started).seconds)
        return w.bytes
    }

    /// Collects now (the single-flight leader runs this).
    func collect(budgetSeconds: Double) -> Collection {
        collections.add(1, ordering: .relaxed)
        let started = ContinuousClock.now
        let timeoutMs = Int(min(Double(settings.statementTimeoutMilliseconds), budgetSeconds * 1000))
        do {
            let snapshot = try connection.withLock { connection in
                if connection == nil || connection?.isHealthy == false {
                    connection = nil
                    var attempt = settings
                    attempt.connectTimeoutSeconds = min(settings.connectTimeoutSeconds, max(2, Int(budgetSeconds.rounded(.up))))
                    connection = try PostgresConnection(attempt)
                }
                do {
                    return try connection!.readSnapshot(statementTimeoutMilliseconds: timeoutMs)
                } catch let error as PostgresError where error.kind == .connection {
                    connection = nil
                    throw error
                }
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

    private func noteUp(_ snapshot: ActivitySnapshot) {
        if wasUp.exchange(1, ordering: .relaxed) != 1 {
            logger.info(
                "connected to PostgreSQL",
                metadata: ["server_version": "\(snapshot.serverVersionString)", "target": "\(ConnectionString.redacted(settings.dsn))"])
        }
        if snapshot.hasHiddenSessions && !warnedHidden.exchange(true, ordering: .relaxed) {
            logger.warning(
                "some sessions' state is hidden: grant pg_monitor (or pg_read_all_stats) to the exporter's role; they are counted as state=\"unknown\"")
        }
    }

    private func noteDown(_ error: Error) {
        if wasUp.exchange(0, ordering: .relaxed) != 0 {
            logger.error("cannot read PostgreSQL", metadata: ["error": "\(error)", "target": "\(ConnectionString.redacted(settings.dsn))"])
        } else {
            logger.debug("cannot read PostgreSQL", metadata: ["error": "\(error)"])
        }
    }

    private func writeOwnMetrics(into w: inout ExpositionWriter, scrapeSeconds: Double) {
        w.family("pg_lock_exporter_scrape_duration_seconds", .gauge, help: "Time this scrape took, including waiting for a shared collection.")
        w.sample("pg_lock_exporter_scrape_duration_seconds", scrapeSeconds)
        w.family("pg_lock_exporter_scrape_errors_total", .counter, help: "Scrapes that could not read PostgreSQL.")
        w.sample("pg_lock_exporter_scrape_errors_total", scrapeErrors.load(ordering: .relaxed))
        w.family("pg_lock_exporter_collections_total", .counter, help: "Collections run against PostgreSQL; concurrent scrapes share one.")
        w.sample("pg_lock_exporter_collections_total", collections.load(ordering: .relaxed))
        w.family("pg_lock_exporter_build_info", .gauge, help: "The exporter's version; always 1.")
        w.sample("pg_lock_exporter_build_info", ["version": BuildInfo.version], 1)
        ProcessMetrics.write(into: &w)
    }

    /// Closes the connection (at shutdown).
    public func close() {
        connection.withLock { $0 = nil }
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
