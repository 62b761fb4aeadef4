import ArgumentParser
import Logging
import PGLockExporter

/// `pg_lock_exporter serve`: the Prometheus exporter.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve Prometheus metrics about sessions, locks and blocking chains (the default).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var webConfig: WebConfigOption

    @Option(name: .customLong("web.listen-address"), help: "Address to listen on: :PORT, HOST:PORT or [IPv6]:PORT.")
    var listenAddress: String = ":9817"

    @Option(name: .customLong("web.telemetry-path"), help: "Path under which to expose metrics.")
    var telemetryPath: String = "/metrics"

    @Option(name: .customLong("collector.top-roots"), help: "Root blockers that get their own pg_blocking_root_* series.")
    var topRoots: Int = 5

    @Option(
        name: .customLong("collector.max-user-app-pairs"),
        help: "usename/application_name pairs per database before the rest fold into \"other\".")
    var maxPairs: Int = 50

    func validate() throws {
        guard telemetryPath.hasPrefix("/"), telemetryPath != "/" else {
            throw ValidationError("--web.telemetry-path: must start with / and not be / itself")
        }
        guard topRoots >= 0 else { throw ValidationError("--collector.top-roots: must be 0 or more") }
        guard maxPairs >= 1 else { throw ValidationError("--collector.max-user-app-pairs: must be 1 or more") }
        do { _ = try ListenAddress(parsing: listenAddress) } catch { throw ValidationError("--web.listen-address: \(error)") }
    }

    func run() throws {
        ShutdownSignals.block()  // before any thread starts, so every thread inherits the mask
        let logger = logging.makeLogger("pg_lock_exporter")
        let settings = try connection.settings()
        let web = try webConfig.load()
        let collector = Collector(
            settings: settings, options: MetricOptions(topRoots: topRoots, maxUserApplicationPairs: maxPairs), logger: logger)
        let routes = ExporterRoutes(telemetryPath: telemetryPath, collector: collector)
        let address = try ListenAddress(parsing: listenAddress)
        let server: HTTPServer
        do {
            server = try webConfig.startServer(web, address: address) { routes.handle($0) }
        } catch {
            logger.error("cannot start HTTP server", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info(
            "listening",
            metadata: [
                "address": "\(ListenAddress(host: address.host, port: server.port))", "version": "\(BuildInfo.version)",
                "target": "\(ConnectionString.redacted(settings.dsn))", "tls": "\(web.tls != nil)",
                "basic_auth": "\(!web.basicAuthUsers.isEmpty)",
            ])
        // Connect once at start so a wrong DSN shows in the log at once; a server that is down
        // is not fatal: scrapes answer pg_up 0 until it is back.
        _ = collector.scrape(timeoutSeconds: Double(settings.connectTimeoutSeconds) + 1)
        let signal = ShutdownSignals.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal == 15 ? "SIGTERM" : "SIGINT")"])
        server.stop()
        collector.close()
    }
}
