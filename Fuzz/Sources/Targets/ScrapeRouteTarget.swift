import Logging
import PGLockExporter

/// How `serve` routes a request, from anything a client can send: method, path, query and
/// headers (the scrape-timeout header above all). Lines of the input: method, path, the query
/// (`k=v&k=v`), then `name: value` headers. No database is behind the collectors: routing is pure.
///
/// Invariants: only GET and HEAD reach a target; a scrape's budget lies between
/// `ScrapeBudget.floor` and `--web.scrape-timeout` (10 s here) whatever the header says; every
/// route that needs no target has an answer; `/probe` and `/tree` name only configured targets;
/// the episode API and the episode pages answer without a store (404).
enum ScrapeRouteTarget {
    static let ceiling = TimeSpan.seconds(10)

    static let routes: (single: ExporterRoutes, multi: ExporterRoutes) = {
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        func collector() -> Collector {
            Collector(settings: ConnectionSettings(dsn: "host=/nonexistent dbname=fuzz"), logger: logger)
        }
        return (
            ExporterRoutes(telemetryPath: "/metrics", collector: collector(), scrapeTimeout: ceiling),
            ExporterRoutes(telemetryPath: "/metrics", targets: ["orders": collector()], scrapeTimeout: ceiling)
        )
    }()

    static let target = FuzzTarget(name: "scrape-route") { bytes in
        let lines = bytes.text.split(separator: "\n", omittingEmptySubsequences: false)
        func line(_ index: Int) -> String { index < lines.count ? String(lines[index]) : "" }
        var query: [String: String] = [:]
        for pair in line(2).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        var headers: [String: String] = [:]
        for header in lines.dropFirst(3) {
            guard let colon = header.firstIndex(of: ":") else { continue }
            headers[header[..<colon].lowercased()] = String(header[header.index(after: colon)...].drop { $0 == " " })
        }
        let request = HTTPRequest(method: line(0), path: line(1), query: query, headers: headers)
        for routes in [routes.single, routes.multi] {
            let route = routes.route(request)
            switch route {
            case .metrics(let budget), .probe(_, let budget):
                FuzzCheck.require(request.method == "GET" || request.method == "HEAD", "\(request.method.debugDescription) reached a target")
                FuzzCheck.require(
                    budget >= ScrapeBudget.floor && budget <= ceiling, "budget \(budget) for \(headers["x-prometheus-scrape-timeout-seconds"].debugDescription)")
                if case .probe(let name, _) = route { FuzzCheck.require(name == "orders", "probe of \(name.debugDescription)") }
                FuzzCheck.require(routes.immediateResponse(route) == nil, "a target route answered without its target")
            case .episodes(let api):
                // The episode API reads the store (none here: sampling off), never a target.
                FuzzCheck.require(request.method == "GET" || request.method == "HEAD", "\(request.method.debugDescription) reached the API")
                let response = routes.episodes.respond(to: api, now: .now())
                FuzzCheck.require(response.status == 404, "status \(response.status) with no store")
            case .episodesPage(let api):
                // The episode pages read the same store: none here, so 404 whatever the request.
                FuzzCheck.require(request.method == "GET" || request.method == "HEAD", "\(request.method.debugDescription) reached the pages")
                let response = routes.episodesPage(api)
                FuzzCheck.require(response.status == 404, "status \(response.status) with no store")
            case .tree(let name, _, let budget):
                // /tree reads a target, like a scrape, within the same ceiling; only a configured one.
                FuzzCheck.require(request.method == "GET" || request.method == "HEAD", "\(request.method.debugDescription) reached a tree")
                FuzzCheck.require(budget >= ScrapeBudget.floor && budget <= ceiling, "tree budget \(budget)")
                FuzzCheck.require(name == nil || name == "orders", "tree of \(name.debugDescription)")
                FuzzCheck.require(routes.immediateResponse(route) == nil, "a tree answered without its target")
            default:
                guard let response = routes.immediateResponse(route) else {
                    return FuzzCheck.require(false, "no answer for \(route)")
                }
                FuzzCheck.require((200...499).contains(response.status), "status \(response.status)")
            }
        }
    }
}
