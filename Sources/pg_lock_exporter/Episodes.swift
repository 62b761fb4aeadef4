import ArgumentParser
import FoundationEssentials
import PGLockExporter

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pg_lock_exporter episodes`: the blocking episodes a running exporter (`--url`) or a store file
/// (`--path`) holds, newest first, as an incident write-up, Markdown or JSON.
struct Episodes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show recorded blocking episodes: who blocked, who waited, how it ended, what would have prevented it.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, markdown, json
    }

    @Option(help: ArgumentHelp("A running exporter, e.g. http://localhost:9817 (its /api/v1/episodes).", valueName: "url"))
    var url: String?

    @Option(help: ArgumentHelp("An episode store file (--episodes.path), read without writing it.", valueName: "file"))
    var path: String?

    @Option(help: ArgumentHelp("Episodes going on at or after this: an RFC 3339 time or a duration ago (1h).", valueName: "time"))
    var since: String?

    @Option(help: "Only this database.")
    var datname: String?

    @Option(help: "Only this target (--config.file names).")
    var target: String?

    @Option(help: ArgumentHelp("Only ongoing (true) or only ended (false) episodes.", valueName: "true|false"))
    var ongoing: String?

    @Option(help: ArgumentHelp("One episode, by its id.", valueName: "id"))
    var id: String?

    @Option(help: "At most this many episodes (1 to 1000).")
    var limit: Int = EpisodeQuery.defaultLimit

    @Option(help: "text (an incident write-up), markdown or json.")
    var format: Format = .text

    @Option(name: .customLong("http.username"), help: "Basic-auth user for --url.")
    var username: String?

    @Option(
        name: .customLong("http.password-file"),
        help: ArgumentHelp("File holding the basic-auth password for --url (or PG_LOCK_EXPORTER_HTTP_PASSWORD).", valueName: "file"))
    var passwordFile: String?

    @Option(name: .customLong("http.ca-file"), help: ArgumentHelp("CA certificates that verify an https:// exporter.", valueName: "file"))
    var caFile: String?

    @Option(name: .customLong("http.cert-file"), help: ArgumentHelp("Client certificate for an exporter that asks for one.", valueName: "file"))
    var certFile: String?

    @Option(name: .customLong("http.key-file"), help: ArgumentHelp("The client certificate's key.", valueName: "file"))
    var keyFile: String?

    @Option(name: .customLong("http.timeout"), help: ArgumentHelp("The most --url may take, connecting included.", valueName: "duration"))
    var timeout: String = "10s"

    func validate() throws {
        guard (url == nil) != (path == nil) else { throw ValidationError("give one of --url (a running exporter) or --path (a store file)") }
        guard (certFile == nil) == (keyFile == nil) else { throw ValidationError("--http.cert-file and --http.key-file go together") }
        if path != nil, username != nil || passwordFile != nil || caFile != nil || certFile != nil {
            throw ValidationError("--http.* options are for --url")
        }
        if id != nil, since != nil || datname != nil || target != nil || ongoing != nil {
            throw ValidationError("--id: not with filters (an id names one episode)")
        }
        if let id, id.utf8.count != 16 || !id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
            throw ValidationError("--id: an episode id is 16 lowercase hex digits, not \"\(TerminalText.excerpt(id, limit: 40))\"")
        }
        _ = try query()
        _ = try parseTimeSpan(timeout, "--http.timeout")
        if let url {
            do { try HTTPFetch.validate(url) } catch { throw ValidationError("--url: \(error.description)") }
        }
    }

    /// The filters, checked by the same parser as the API's.
    private func query() throws -> EpisodeQuery {
        var arguments: [HTTPRequest.QueryArgument] = []
        if let since { arguments.append(.init(name: "since", value: since)) }
        if let datname { arguments.append(.init(name: "datname", value: datname)) }
        if let target { arguments.append(.init(name: "target", value: target)) }
        if let ongoing { arguments.append(.init(name: "ongoing", value: ongoing)) }
        arguments.append(.init(name: "limit", value: String(limit)))
        do {
            return try EpisodeQuery.parse(arguments: arguments)
        } catch {
            throw ValidationError("--\(error.description)")
        }
    }

    func run() throws {
        let records = try url != nil ? fetch() : read()
        switch format {
        case .text: print(EpisodeReportText.render(records), terminator: "")
        case .markdown: print(EpisodeReportMarkdown.render(records), terminator: "")
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(records), as: UTF8.self))
        }
    }

    private func read() throws -> [EpisodeRecord] {
        do {
            let store = try EpisodeStore.openReadOnly(path: path!)
            defer { store.close() }
            if let id { return try store.episode(id: id).map { [$0] } ?? [] }
            let query = try query()
            return try store.episodes(
                since: query.sinceTimestamp(now: .now()), datname: query.datname, target: query.target, ongoing: query.ongoing,
                limit: query.limit)
        } catch let error as EpisodeStore.Error {
            throw ConfigFileError(description: "--path: \(error.description)")
        }
    }

    private func fetch() throws -> [EpisodeRecord] {
        var client = HTTPFetch()
        client.caFile = caFile
        client.certificateFile = certFile
        client.keyFile = keyFile
        client.username = username
        client.totalTimeout = try parseTimeSpan(timeout, "--http.timeout")
        client.connectTimeout = min(client.totalTimeout, .seconds(5))
        if username != nil {
            if let file = passwordFile {
                do { client.password = try TextFile.secret(file) } catch { throw ValidationError("--http.password-file \(error)") }
            } else if let value = getenv("PG_LOCK_EXPORTER_HTTP_PASSWORD") {
                client.password = String(cString: value)
            }
        }
        var base = url!
        while base.hasSuffix("/") { base.removeLast() }
        let filters = try query().queryString
        let address = base + EpisodeAPI.path + (id.map { "/" + $0 } ?? "?" + filters)
        let response: HTTPFetch.Response
        do { response = try client.get(address) } catch { throw ConfigFileError(description: "--url: \(error.description)") }
        do {
            return try EpisodeAPIAnswer.records(status: response.status, body: response.body, single: id != nil)
        } catch {
            throw ConfigFileError(description: "--url: \(error.description)")
        }
    }
}
