import ArgumentParser
import Logging
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter serve`: the Prometheus exporter.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve Prometheus metrics about sessions, locks and blocking chains (the default).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup(title: "PgBouncer (name the application client behind the pooler)") var pgbouncer: PgBouncerOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var web: WebServerOptions

    @Option(name: .customLong("web.listen-address"), help: "Address to listen on: :PORT, HOST:PORT or [IPv6]:PORT.")
    var listenAddress: String = ":9817"

    @Option(name: .customLong("web.telemetry-path"), help: "Path under which to expose metrics.")
    var telemetryPath: String = "/metrics"

    @Option(
        name: .customLong("config.file"),
        help: ArgumentHelp("Named targets, scraped at /probe?target=NAME (multi-target mode).", valueName: "file"))
    var configFile: String?

    @Option(
        name: .customLong("sample.interval"),
        help: ArgumentHelp(
            "Sample blocking between scrapes this often: counters, and blocking episodes (0 turns both off; at least 50ms).",
            valueName: "duration"))
    var sampleInterval: String = "1s"

    @Option(
        name: .customLong("episodes.path"),
        help: ArgumentHelp(
            "Where blocking episodes are kept: an SQLite file, kept across restarts and never overwritten when damaged, or :memory:.",
            valueName: "path"))
    var episodesPath: String = ":memory:"

    @Option(
        name: .customLong("episodes.retention"),
        help: ArgumentHelp("Episodes that started longer ago than this are pruned (at start and every 5 minutes).", valueName: "duration"))
    var episodesRetention: String = "30d"

    @Option(
        name: .customLong("episodes.retention.count"),
        help: ArgumentHelp("At most this many episodes are kept, the newest (1 or more).", valueName: "count"))
    var episodesRetentionCount: Int = 100_000

    @Option(
        name: .customLong("episodes.query-text"),
        help: ArgumentHelp(
            "How episodes keep statements: normalized (constants replaced by $n, comments removed), full (as written) or none.",
            valueName: "policy"))
    var episodesQueryText: String = QueryText.Policy.normalized.rawValue

    @Option(
        name: .customLong("episodes.log-after"),
        help: ArgumentHelp(
            "Log an episode's start once it has lasted this long, and its end (shorter episodes are stored, not logged).",
            valueName: "duration"))
    var episodesLogAfter: String = "1s"

    @Option(
        name: .customLong("web.external-url"),
        help: ArgumentHelp(
            "The URL under which the exporter is reached from outside (e.g. behind a proxy): alerts and the dashboard link each target's /tree from it.",
            valueName: "url"))
    var externalURL: String?

    @Option(
        name: .customLong("web.tree.query-text"),
        help: ArgumentHelp(
            "How /tree shows statements: normalized (constants replaced by $n, comments removed), full (as written) or none.",
            valueName: "policy"))
    var treeQueryText: String = QueryText.Policy.normalized.rawValue

    @Option(
        name: .customLong("web.scrape-timeout"),
        help: ArgumentHelp(
            "A scrape's timeout when the request carries no X-Prometheus-Scrape-Timeout-Seconds, and the most that header may ask for; the answer comes 0.5s before it (at least 250ms after the request).",
            valueName: "duration"))
    var scrapeTimeout: String = "10s"

    @Option(name: .customLong("collector.top-roots"), help: "Root blockers that get their own pg_blocking_root_* series.")
    var topRoots: Int = 5

    @Option(
        name: .customLong("collector.max-user-app-pairs"),
        help: "usename/application_name pairs per database before the rest fold into \"other\".")
    var maxPairs: Int = 50

    @Option(
        name: .customLong("collector.top-relations"),
        help: "Relations per database that get their own pg_lock_waiting_sessions series; the rest fold into \"other\".")
    var topRelations: Int = 10

    @Option(
        name: .customLong("print-sql"),
        help: ArgumentHelp("Print the collection's SQL for a server_version_num (e.g. 150018) and exit.", visibility: .hidden))
    var printSQLVersion: Int?

    func validate() throws {
        guard telemetryPath.hasPrefix("/"), telemetryPath != "/", telemetryPath != ExporterRoutes.probePath,
            !telemetryPath.hasPrefix("/api/")
        else {
            throw ValidationError("--web.telemetry-path: must start with /, and not be / or /probe or under /api/")
        }
        guard topRoots >= 0 else { throw ValidationError("--collector.top-roots: must be 0 or more") }
        guard maxPairs >= 1 else { throw ValidationError("--collector.max-user-app-pairs: must be 1 or more") }
        guard topRelations >= 0 else { throw ValidationError("--collector.top-relations: must be 0 or more") }
        do { _ = try ListenAddress(parsing: listenAddress) } catch { throw ValidationError("--web.listen-address: \(error)") }
        if try samplingInterval().map({ $0.seconds < 0.05 }) == true {
            throw ValidationError("--sample.interval: must be 0 (off) or at least 50ms")
        }
        guard episodesPath.utf8.count <= 4096, !episodesPath.utf8.contains(0) else {
            throw ValidationError("--episodes.path: at most 4096 bytes, no NUL")
        }
        guard try parseDuration(episodesRetention, "--episodes.retention") > 0 else {
            throw ValidationError("--episodes.retention: must be more than 0")
        }
        guard episodesRetentionCount >= 1 else { throw ValidationError("--episodes.retention.count: must be 1 or more") }
        _ = try queryTextPolicy(episodesQueryText, "--episodes.query-text")
        _ = try parseDuration(episodesLogAfter, "--episodes.log-after")
        if let externalURL {
            do { _ = try PageLinks.parse(externalURL) } catch { throw ValidationError("--web.external-url: \(error.description)") }
        }
        _ = try queryTextPolicy(treeQueryText, "--web.tree.query-text")
        guard try parseDuration(scrapeTimeout, "--web.scrape-timeout") >= 1 else {
            throw ValidationError("--web.scrape-timeout: must be at least 1s")
        }
        if configFile != nil && connection.dsn != nil { throw ValidationError("--dsn: not with --config.file (name targets there)") }
        if configFile != nil && !pgbouncer.dsns.isEmpty {
            throw ValidationError("--pgbouncer.dsn: not with --config.file (name each target's poolers there, under pgbouncers:)")
        }
    }

    func run() throws {
        if let version = printSQLVersion {
            // For the benchmark: the exact statements a scrape sends, as Collector builds them (the
            // pg_settings statement is sent on connect and then once a minute), separated by "--" lines.
            let batch = SnapshotBatch(serverVersion: version, identity: false, settings: true, roleSettings: true)
            print(batch.statementsSQL.joined(separator: "\n--\n"))
            return
        }
        ShutdownSignals.block()  // before any thread starts, so every thread inherits the mask
        AllocatorTuning.keepFreedMemoryForReuse()
        let logger = logging.makeLogger("pg_lock_exporter")
        let webConfig = try web.load()
        let options = MetricOptions(topRoots: topRoots, maxUserApplicationPairs: maxPairs, topRelations: topRelations)
        let sampling = try samplingInterval()
        let base = try connection.settings()
        let scrapeCeiling = try parseTimeSpan(scrapeTimeout, "--web.scrape-timeout")
        let writer = try sampling.map { _ in try openEpisodeStore(logger: logger) }
        let queryText = try queryTextPolicy(episodesQueryText, "--episodes.query-text")
        let logAfter = try parseTimeSpan(episodesLogAfter, "--episodes.log-after")
        func episodes(_ target: String) -> EpisodeSettings? {
            writer.map { EpisodeSettings(target: target, queryText: queryText, logAfter: logAfter, writer: $0) }
        }

        // Checked in validate(): here it only gets its trailing slash.
        let external = externalURL.flatMap { try? PageLinks.parse($0) }
        var routes: ExporterRoutes
        let collectors: [Collector]
        if let configFile {
            let config: TargetsConfig
            do {
                config = try TargetsConfig.load(path: configFile) { getenv($0).map { String(cString: $0) } }
            } catch { throw ConfigFileError(description: error.description) }
            var targets: [String: Collector] = [:]
            for (name, target) in config.targets {
                var settings = base
                settings.dsn = target.dsn
                settings.password = target.password
                let targetLogger = logger.with(metadata: "target", name)
                targets[name] = Collector(
                    settings: settings, options: options, sampleInterval: sampling, episodes: episodes(name),
                    poolers: try pgbouncer.poolers(target.pgbouncers, connection: settings, logger: targetLogger),
                    pageLinks: external.map { PageLinks(externalURL: $0, target: name) }, logger: targetLogger)
            }
            routes = ExporterRoutes(
                telemetryPath: telemetryPath, targets: targets, scrapeTimeout: scrapeCeiling, episodeStore: writer?.store)
            collectors = config.targets.map { targets[$0.name]! }
        } else {
            let collector = Collector(
                settings: base, options: options, sampleInterval: sampling, episodes: episodes(EpisodeSettings.singleTarget),
                poolers: try pgbouncer.poolers(try pgbouncer.endpoints(), connection: base, logger: logger),
                pageLinks: external.map { PageLinks(externalURL: $0, target: nil) }, logger: logger)
            routes = ExporterRoutes(
                telemetryPath: telemetryPath, collector: collector, scrapeTimeout: scrapeCeiling, episodeStore: writer?.store)
            collectors = [collector]
        }

        routes.treeQueryText = try queryTextPolicy(treeQueryText, "--web.tree.query-text")
        let routesServed = routes
        let targets = configFile == nil ? ConnectionString.redacted(base.dsn) : routes.targets.keys.sorted().joined(separator: ",")
        let server = try web.startServer(
            webConfig, address: try ListenAddress(parsing: listenAddress), logger: logger, details: ["targets": "\(targets)"],
            preflight: { routesServed.preflight($0) }
        ) { routesServed.handle($0) }
        if configFile == nil {
            // Connect once at start so a wrong DSN shows in the log at once; a server that is
            // down is not fatal: scrapes answer pg_up 0 until it is back. In the background:
            // a signal that arrives meanwhile is handled at once (stopOnSignal, below).
            collectors[0].scrapeInBackground(budget: .seconds(base.connectTimeoutSeconds + 1))
        }
        let sampler = sampling.map { SamplingLoop(collectors: collectors, interval: $0) }

        stopOnSignal(logger) {
            sampler?.stop()
            collectors.forEach { $0.cancelRunningQuery() }
            server.stop()
            // Ongoing episodes end as unobserved; what is queued reaches the store before exit.
            let now = EpisodeRecord.Timestamp.now()
            collectors.forEach { $0.episodes?.stop(at: now) }
            if let writer, !writer.close(waitingAtMost: .seconds(5)) {
                logger.error("episode store: queued episodes not written within 5s at shutdown")
            }
            writer?.store.close()
            collectors.forEach { $0.close() }
        }
    }

    /// A statement policy flag (`--episodes.query-text`, `--web.tree.query-text`), or one line naming it.
    private func queryTextPolicy(_ text: String, _ flag: String) throws -> QueryText.Policy {
        guard let policy = QueryText.Policy(rawValue: text) else {
            throw ValidationError("\(flag): must be normalized, full or none, not \"\(TerminalText.excerpt(text, limit: 64))\"")
        }
        return policy
    }

    /// `--sample.interval`: nil when sampling is off (`0`, `0s`).
    private func samplingInterval() throws -> TimeSpan? {
        if sampleInterval == "0" { return nil }
        let interval = try parseTimeSpan(sampleInterval, "--sample.interval")
        return interval == .zero ? nil : interval
    }

    /// Opens `--episodes.path`, ends what a previous process left ongoing, and starts the writer
    /// (which prunes at once). A store that cannot be opened or written stops `serve` with one
    /// line (exit 2); a damaged file is left as it is (`EpisodeStore.open` only reads it).
    private func openEpisodeStore(logger: Logger) throws -> EpisodeStoreWriter {
        do {
            let store = try EpisodeStore.open(path: episodesPath)
            let ended = try EpisodeStoreWriter.endLeftOngoing(in: store)
            if ended > 0 {
                logger.warning("episodes left ongoing by a previous run ended as unobserved", metadata: ["count": "\(ended)"])
            }
            let retention = EpisodeStoreWriter.Retention(
                maximumAge: try parseTimeSpan(episodesRetention, "--episodes.retention"), maximumCount: episodesRetentionCount)
            return EpisodeStoreWriter(store: store, retention: retention, logger: logger)
        } catch let error as EpisodeStore.Error {
            throw ConfigFileError(description: "--episodes.path: \(error.description)")
        }
    }
}

extension Logger {
    /// A copy that adds one metadata field to every entry.
    func with(metadata key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = "\(value)"
        return copy
    }
}
