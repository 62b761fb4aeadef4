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
            "Sample blocking and idle-in-transaction counts this often between scrapes, into counters (off by default).",
            valueName: "duration"))
    var sampleInterval: String?

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
        guard telemetryPath.hasPrefix("/"), telemetryPath != "/", telemetryPath != ExporterRoutes.probePath else {
            throw ValidationError("--web.telemetry-path: must start with /, and not be / or /probe")
        }
        guard topRoots >= 0 else { throw ValidationError("--collector.top-roots: must be 0 or more") }
        guard maxPairs >= 1 else { throw ValidationError("--collector.max-user-app-pairs: must be 1 or more") }
        guard topRelations >= 0 else { throw ValidationError("--collector.top-relations: must be 0 or more") }
        do { _ = try ListenAddress(parsing: listenAddress) } catch { throw ValidationError("--web.listen-address: \(error)") }
        if let sampleInterval, try parseDuration(sampleInterval, "--sample.interval") < 0.05 {
            throw ValidationError("--sample.interval: must be at least 50ms")
        }
        guard try parseDuration(scrapeTimeout, "--web.scrape-timeout") >= 1 else {
            throw ValidationError("--web.scrape-timeout: must be at least 1s")
        }
        if configFile != nil && connection.dsn != nil { throw ValidationError("--dsn: not with --config.file (name targets there)") }
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
        let sampling = try sampleInterval.map { try parseTimeSpan($0, "--sample.interval") }
        let base = try connection.settings()
        let scrapeCeiling = try parseTimeSpan(scrapeTimeout, "--web.scrape-timeout")

        let routes: ExporterRoutes
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
                targets[name] = Collector(
                    settings: settings, options: options, sampleInterval: sampling, logger: logger.with(metadata: "target", name))
            }
            routes = ExporterRoutes(telemetryPath: telemetryPath, targets: targets, scrapeTimeout: scrapeCeiling)
            collectors = config.targets.map { targets[$0.name]! }
        } else {
            let collector = Collector(settings: base, options: options, sampleInterval: sampling, logger: logger)
            routes = ExporterRoutes(telemetryPath: telemetryPath, collector: collector, scrapeTimeout: scrapeCeiling)
            collectors = [collector]
        }

        let targets = configFile == nil ? ConnectionString.redacted(base.dsn) : routes.targets.keys.sorted().joined(separator: ",")
        let server = try web.startServer(
            webConfig, address: try ListenAddress(parsing: listenAddress), logger: logger, details: ["targets": "\(targets)"]
        ) { routes.handle($0) }
        if configFile == nil {
            // Connect once at start so a wrong DSN shows in the log at once; a server that is
            // down is not fatal: scrapes answer pg_up 0 until it is back.
            _ = collectors[0].scrape(budget: .seconds(base.connectTimeoutSeconds + 1))
        }
        let sampler = sampling.map { Sampler(collectors: collectors, interval: $0) }

        stopOnSignal(logger) {
            sampler?.stop()
            collectors.forEach { $0.cancelRunningQuery() }
            server.stop()
            collectors.forEach { $0.close() }
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
