import ArgumentParser
import Logging
import PGLockExporter

/// `remediate --listen`: the long-running service that Alertmanager calls.
struct WebhookOptions: ParsableArguments {
    @Option(
        name: .customLong("listen"),
        help: ArgumentHelp("Run as a service receiving Alertmanager webhooks on this address, e.g. :9818.", valueName: "address"))
    var listen: String?

    @Option(
        name: .customLong("webhook.token-file"),
        help: ArgumentHelp("File holding the bearer token Alertmanager must send.", valueName: "file"))
    var tokenFile: String?

    @Option(name: .customLong("webhook.alertname"), help: "Alert names that trigger a pass (repeatable).")
    var alertNames: [String] = ["PostgresBlockerIdleInTransaction"]

    @OptionGroup var web: WebServerOptions

    @Option(name: .customLong("max-terminations-per-minute"), help: "Cap on terminations across passes in any minute.")
    var maxPerMinute: Int = 5

    func validate() throws {
        guard let listen else { return }
        do { _ = try ListenAddress(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
        guard maxPerMinute >= 0 else { throw ValidationError("--max-terminations-per-minute: must be 0 or more") }
    }

    /// Reads the token, applies the start-up rules, serves until SIGTERM/SIGINT.
    func serve(connection: ConnectionOptions, remediation: RemediationOptions, pgbouncer: PgBouncerOptions, logger: Logger) throws {
        ShutdownSignals.block()
        let address = try ListenAddress(parsing: listen!)
        var token: String?
        if let tokenFile {
            do { token = try TextFile.secret(tokenFile) } catch { throw ValidationError("--webhook.token-file \(error)") }
        } else if remediation.execute && !address.isLoopback {
            throw ValidationError(
                "--webhook.token-file: required with --execute on a non-loopback --listen address; anyone who can reach \(address) could trigger terminations")
        } else {
            logger.warning("no --webhook.token-file: webhooks are accepted without authentication")
        }
        let settings = try connection.settings(applicationName: "pg_lock_exporter remediate")
        let webConfig = try web.load()
        let audit = try remediation.openAuditLog()
        var configuration = WebhookService.Configuration(
            settings: settings, policy: try remediation.policy(pid: nil, force: false), execute: remediation.execute,
            allDatabases: remediation.allDatabases, token: token, alertNames: Set(alertNames),
            maxTerminationsPerMinute: maxPerMinute, audit: audit)
        configuration.poolers = try pgbouncer.poolers(try pgbouncer.endpoints(), connection: settings, logger: logger)
        let service = WebhookService(configuration: configuration, logger: logger)
        // With a token the webhook has its own bearer auth (Alertmanager sends one Authorization
        // header) and basic auth guards the other paths; without one, basic auth guards all.
        let server = try web.startServer(
            webConfig, address: address, basicAuthExempt: token == nil ? [] : [WebhookService.webhookPath], logger: logger,
            details: [
                "mode": "\(remediation.execute ? "execute" : "dry-run")", "target": "\(ConnectionString.redacted(settings.dsn))",
                "alertnames": "\(alertNames.sorted().joined(separator: ","))",
            ],
            preflight: { service.preflight($0) }, acceptsBody: WebhookService.acceptsBody
        ) { service.handle($0) }
        stopOnSignal(logger) {
            server.stop()
            service.drain(timeout: .seconds(1))
        }
    }
}
