import ArgumentParser
import PGLockExporter

/// `--web.config.file`: TLS and basic auth for the HTTP endpoints (exporter-toolkit format).
struct WebConfigOption: ParsableArguments {
    @Option(
        name: .customLong("web.config.file"),
        help: ArgumentHelp("TLS and basic auth settings (Prometheus exporter-toolkit format).", valueName: "file"))
    var path: String?

    /// The parsed file; any problem is a usage error naming the file and field.
    func load() throws -> WebConfig {
        guard let path else { return WebConfig() }
        do { return try WebConfig.load(path: path) } catch { throw ValidationError(error.description) }
    }

    /// Starts the server with the file's TLS settings and its access rules in front of `handler`.
    func startServer(
        _ config: WebConfig, address: ListenAddress, basicAuthExempt: Set<String> = [], handler: @escaping HTTPServer.Handler
    ) throws(HTTPServerError) -> HTTPServer {
        let guarded = AccessGuard(config: config, basicAuthExempt: basicAuthExempt).wrap(handler)
        return try HTTPServer(address: address, tls: config.tls, handler: guarded)
    }
}
