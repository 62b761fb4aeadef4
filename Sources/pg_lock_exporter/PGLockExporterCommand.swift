import ArgumentParser
import PGLockExporter

/// `pg_lock_exporter`: `serve` (the default), `check` and `remediate`.
@main
struct PGLockExporterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pg_lock_exporter",
        abstract: "Prometheus exporter that names the session blocking your PostgreSQL database.",
        version: BuildInfo.version,
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}
