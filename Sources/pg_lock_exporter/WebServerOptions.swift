import ArgumentParser
import Logging
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The HTTP server's settings shared by `serve` and `remediate --listen`: `--web.config.file`
/// (TLS and basic auth, exporter-toolkit format) and the limits that keep slow or abusive
/// clients from starving Prometheus's scrape.
struct WebServerOptions: ParsableArguments {
    @Option(
        name: .customLong("web.config.file"),
        help: ArgumentHelp("TLS and basic auth settings (Prometheus exporter-toolkit format).", valueName: "file"))
    var path: String?

    @Option(name: .customLong("web.max-connections"), help: "Connections served at once; more are refused.")
    var maxConnections: UInt32 = 256

    @Option(name: .customLong("web.max-header-bytes"), help: "Largest request line plus headers accepted.")
    var maxHeaderBytes: Int = 32 * 1024

    @Option(name: .customLong("web.connection-timeout"), help: "Close a connection idle or stalled this long.")
    var connectionTimeout: String = "30s"

    func validate() throws {
        guard maxConnections >= 4 else { throw ValidationError("--web.max-connections: must be at least 4") }
        guard maxHeaderBytes >= 1024 else { throw ValidationError("--web.max-header-bytes: must be at least 1024") }
        let timeout = try parseDuration(connectionTimeout, "--web.connection-timeout")
        guard timeout >= 1 else { throw ValidationError("--web.connection-timeout: must be at least 1s") }
    }

    var limits: HTTPServerLimits {
        var limits = HTTPServerLimits()
        limits.maxConnections = maxConnections
        limits.maxHeaderBytes = maxHeaderBytes
        // Whole seconds of at most 365 days: fits UInt32.
        let timeout = (try? DurationText.timeSpan(connectionTimeout)) ?? .seconds(30)
        limits.connectionTimeoutSeconds = UInt32(clamping: timeout.nanoseconds / 1_000_000_000)
        return limits
    }

    /// The parsed file; any problem is a `ConfigFileError` naming the file and field.
    func load() throws -> WebConfig {
        guard let path else { return WebConfig() }
        do { return try WebConfig.load(path: path) } catch { throw ConfigFileError(description: error.description) }
    }

    /// Starts the server with the file's TLS settings and its access rules in front of `handler`,
    /// and logs `listening` with the bound address and `details`. A failure to listen is logged
    /// and exits 1.
    func startServer(
        _ config: WebConfig, address: ListenAddress, basicAuthExempt: Set<String> = [], logger: Logger,
        details: Logger.Metadata, preflight: HTTPServer.Preflight? = nil, handler: @escaping HTTPServer.Handler
    ) throws -> HTTPServer {
        // Access rules and the handler's own preflight run on the headers, before any body is read.
        let guardian = AccessGuard(config: config, basicAuthExempt: basicAuthExempt)
        let server: HTTPServer
        do {
            server = try HTTPServer(
                address: address, limits: limits, tls: config.tls,
                preflight: { request in guardian.check(request) ?? preflight?(request) }, handler: handler)
        } catch {
            logger.error("cannot start HTTP server", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        var metadata = details
        metadata["address"] = "\(ListenAddress(host: address.host, port: server.port))"
        metadata["version"] = "\(BuildInfo.version)"
        metadata["tls"] = "\(config.tls != nil)"
        metadata["basic_auth"] = "\(!config.basicAuthUsers.isEmpty)"
        logger.info("listening", metadata: metadata)
        return server
    }
}

/// Waits for SIGTERM or SIGINT (blocked at start with `ShutdownSignals.block()`), logs it, and
/// runs `orderly`; the process exits 0 within `ShutdownSignals.stop`'s grace time either way.
func stopOnSignal(_ logger: Logger, _ orderly: () -> Void) {
    let signal = ShutdownSignals.wait()
    logger.info("shutting down", metadata: ["signal": "\(ShutdownSignals.name(signal))"])
    ShutdownSignals.stop(orderly)
}
