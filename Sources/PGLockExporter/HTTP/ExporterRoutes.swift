/// The exporter's HTTP surface: a landing page at `/`, the metrics at the telemetry path, the
/// blocking episodes at `/api/v1/episodes` (`EpisodeAPI`), the pages for people (`/tree`,
/// `/episodes`, `/episodes/{id}`, their stylesheet), 404 elsewhere, 405 for anything but GET and
/// HEAD.
///
/// With one target, the telemetry path serves it. With named targets (`--config.file`),
/// `/probe?target=NAME` serves one of them (the multi-target exporter pattern) and the telemetry
/// path serves only the exporter's own metrics.
public struct ExporterRoutes: Sendable {
    public let telemetryPath: String
    /// The single target, or nil in multi-target mode.
    public let collector: Collector?
    public let targets: [String: Collector]
    /// `--web.scrape-timeout`: a scrape's timeout when the request does not say, and the most a
    /// request may ask for (`ScrapeBudget`). Prometheus's own default scrape timeout, 10 s.
    public let scrapeTimeout: TimeSpan
    /// `--episodes.path`, read by the API; nil when sampling (and so episodes) is off.
    public let episodes: EpisodeAPI
    /// How `/tree` shows statements (`--web.tree.query-text`, default normalized).
    public var treeQueryText: QueryText.Policy = .normalized

    public init(
        telemetryPath: String, collector: Collector, scrapeTimeout: TimeSpan = .seconds(10), episodeStore: EpisodeStore? = nil
    ) {
        self.telemetryPath = telemetryPath
        self.collector = collector
        self.targets = [:]
        self.scrapeTimeout = scrapeTimeout
        self.episodes = EpisodeAPI(store: episodeStore)
    }

    public init(
        telemetryPath: String, targets: [String: Collector], scrapeTimeout: TimeSpan = .seconds(10), episodeStore: EpisodeStore? = nil
    ) {
        self.telemetryPath = telemetryPath
        self.collector = nil
        self.targets = targets
        self.scrapeTimeout = scrapeTimeout
        self.episodes = EpisodeAPI(store: episodeStore)
    }

    public static let probePath = "/probe"

    /// What a request asks for, decided from its method, path, query and headers alone.
    public enum Route: Sendable, Equatable {
        case landingPage
        case healthy
        /// The single target's metrics, within the budget.
        case metrics(budget: TimeSpan)
        /// Multi-target mode's telemetry path: the exporter's own metrics.
        case processMetrics
        /// One named target's metrics, within the budget.
        case probe(target: String, budget: TimeSpan)
        case notFound
        case methodNotAllowed
        case missingTarget
        /// The name as sent (the answer quotes at most 100 characters of it).
        case unknownTarget(String)
        /// `/api/v1/episodes` and `/api/v1/episodes/{id}`.
        case episodes(EpisodeAPI.Request)
        /// `/tree` of the single target, or of `?target=NAME`; `refresh` false with `?refresh=0`.
        case tree(target: String?, refresh: Bool, budget: TimeSpan)
        /// `/tree` in multi-target mode without a target: the list of targets.
        case treeTargets
        /// `/tree?target=` naming no target: the name as sent.
        case unknownTreeTarget(String)
        /// `/episodes` and `/episodes/{id}`, the pages over the API's records.
        case episodesPage(EpisodeAPI.Request)
        case stylesheet
    }

    public static let treePath = "/tree"
    public static let episodesPagePath = "/episodes"

    /// The route of a request, without touching a target: pure, so a fuzz target can feed it any
    /// method, path, query and headers with no database behind the collectors.
    public func route(_ request: HTTPRequest) -> Route {
        if let api = EpisodeAPI.request(request) {
            guard request.method == "GET" || request.method == "HEAD" else { return .methodNotAllowed }
            return .episodes(api)
        }
        if let page = pageRoute(request) {
            guard request.method == "GET" || request.method == "HEAD" else { return .methodNotAllowed }
            return page
        }
        let probe = collector == nil && request.path == Self.probePath
        guard request.path == "/" || request.path == telemetryPath || request.path == "/-/healthy" || probe else {
            return .notFound
        }
        guard request.method == "GET" || request.method == "HEAD" else { return .methodNotAllowed }
        let budget = ScrapeBudget.budget(header: request.headers["x-prometheus-scrape-timeout-seconds"], ceiling: scrapeTimeout)
        switch request.path {
        case Self.probePath where probe:
            guard let name = request.query["target"], !name.isEmpty else { return .missingTarget }
            guard targets[name] != nil else { return .unknownTarget(name) }
            return .probe(target: name, budget: budget)
        case telemetryPath:
            return collector == nil ? .processMetrics : .metrics(budget: budget)
        case "/-/healthy":
            return .healthy
        default:
            return .landingPage
        }
    }

    /// The pages' routes; nil for any other path.
    private func pageRoute(_ request: HTTPRequest) -> Route? {
        switch request.path {
        case PageStyle.path:
            return .stylesheet
        case Self.treePath:
            let refresh = request.query["refresh"] != "0"
            let budget = ScrapeBudget.budget(header: nil, ceiling: scrapeTimeout)
            if collector != nil { return .tree(target: nil, refresh: refresh, budget: budget) }
            guard let name = request.query["target"], !name.isEmpty else { return .treeTargets }
            guard targets[name] != nil else { return .unknownTreeTarget(name) }
            return .tree(target: name, refresh: refresh, budget: budget)
        default:
            // The form sends its empty fields; they filter nothing.
            let prefix = Self.episodesPagePath
            guard request.path == prefix || request.path.hasPrefix(prefix + "/") else { return nil }
            var api = request
            api.path = EpisodeAPI.path + request.path.dropFirst(prefix.count)
            api.queryArguments = request.queryArguments.filter { $0.value != "" }
            return EpisodeAPI.request(api).map { .episodesPage($0) }
        }
    }

    /// The answer to a route that needs no target (everything but `metrics` and `probe`); nil for those.
    public func immediateResponse(_ route: Route) -> HTTPResponse? {
        switch route {
        case .notFound: return .notFound()
        case .methodNotAllowed: return .methodNotAllowed(allowed: "GET, HEAD")
        case .missingTarget: return .text(400, "the target parameter is missing: /probe?target=NAME\n")
        case .unknownTarget(let name):
            return .text(400, "unknown target \"\(name.prefix(100))\"; known: \(targets.keys.sorted().joined(separator: ", "))\n")
        case .healthy: return .text(200, "OK\n")
        case .landingPage:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(landingPage.utf8))
        case .processMetrics:
            var w = ExpositionWriter()
            Collector.writeProcessMetrics(into: &w)
            return metrics(w.bytes)
        case .stylesheet:
            return PageStyle.response
        case .treeTargets:
            let items = targets.keys.sorted().map { "<li><a href=\"tree?target=\(HTMLText.queryValue($0))\">\(HTMLText.escape($0))</a></li>" }
            return PageDocument(title: "Blocking trees", body: "<h1>Blocking trees</h1>\n<p>Pick a target:</p>\n<ul>\(items.joined())</ul>\n").response
        case .unknownTreeTarget(let name):
            return PageDocument.error(404, "unknown target \"\(name.prefix(100))\"; known: \(targets.keys.sorted().joined(separator: ", "))")
        case .metrics, .probe, .episodes, .tree, .episodesPage:
            return nil
        }
    }

    /// The answer from the headers alone (`HTTPServer`'s preflight) to a request no route takes:
    /// 404, 405, or a /probe without a known target, so that a body such a request announces is
    /// never read. nil for everything else (a body on a route that exists gets the server's 413).
    public func preflight(_ request: HTTPRequest) -> HTTPResponse? {
        let route = route(request)
        switch route {
        case .notFound, .methodNotAllowed, .missingTarget, .unknownTarget, .unknownTreeTarget: return immediateResponse(route)
        case .landingPage, .healthy, .metrics, .processMetrics, .probe, .episodes, .tree, .treeTargets, .episodesPage, .stylesheet:
            return nil
        }
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let route = route(request)
        if case .probe(let name, let budget) = route, let target = targets[name] {
            return metrics(target.scrape(budget: budget, processMetrics: false))
        }
        if case .metrics(let budget) = route, let collector {
            return metrics(collector.scrape(budget: budget))
        }
        if case .episodes(let api) = route {
            return episodes.respond(to: api, now: .now())
        }
        if case .tree(let name, let refresh, let budget) = route, let target = name.flatMap({ targets[$0] }) ?? collector {
            return treePage(target, name: name, refresh: refresh, budget: budget)
        }
        if case .episodesPage(let api) = route {
            return episodesPage(api)
        }
        return immediateResponse(route) ?? .notFound()
    }

    /// `/tree`: the target's blocking trees now, from a collection shared with scrapes.
    ///
    /// `Server-Timing` says how long the collection (`collect`, shared with scrapes) and the
    /// drawing (`render`: the graph, the normalized statements, the HTML) took: what `make bench`
    /// reads.
    func treePage(_ collector: Collector, name: String?, refresh: Bool, budget: TimeSpan) -> HTTPResponse {
        let started = ContinuousClock.now
        let read = collector.pageSnapshot(budget: budget)
        let collected = ContinuousClock.now
        guard var snapshot = read.snapshot else {
            return PageDocument.error(503, "cannot read PostgreSQL: \(read.failure ?? "unknown error")")
        }
        let graph = BlockingGraph(sessions: snapshot.sessions)
        // Statements as the policy shows them, rendered only for the sessions the page draws, and
        // each distinct text once: sessions of one application run the same few statements, and
        // normalizing (a parse by libpg_query) is most of a page's drawing.
        var drawn: [Int] = []
        var distinct: [String: Int] = [:]
        var texts: [String] = []
        for index in snapshot.sessions.indices {
            let s = snapshot.sessions[index]
            guard let raw = s.query else { continue }
            guard s.isBlocked || graph.isBlocking(s.pid) || s.isIdleInTransaction else {
                snapshot.sessions[index].query = nil
                continue
            }
            drawn.append(index)
            if distinct[raw] == nil {
                distinct[raw] = texts.count
                texts.append(raw)
            }
        }
        let rendered = QueryText.render(all: texts, policy: treeQueryText)
        for index in drawn { snapshot.sessions[index].query = rendered[distinct[snapshot.sessions[index].query!]!]?.text }
        let report = BlockingReport(snapshot: snapshot, graph: graph)
        let page = TreePage(
            report: report, target: name, server: ConnectionString.redacted(collector.settings.dsn), readAt: read.readAt,
            refreshSeconds: refresh ? TreePage.defaultRefreshSeconds : nil)
        var response = page.document.response
        let milliseconds = { (d: Duration) -> String in
            let microseconds = max(0, TimeSpan(clamping: d).nanoseconds / 1000)
            let fraction = String(microseconds % 1000)
            return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
        }
        response.headers.append(
            ("Server-Timing", "collect;dur=\(milliseconds(collected - started)), render;dur=\(milliseconds(ContinuousClock.now - collected))"))
        return response
    }

    /// `/episodes` and `/episodes/{id}`.
    public func episodesPage(_ request: EpisodeAPI.Request) -> HTTPResponse {
        let depth: Int
        if case .one = request { depth = 1 } else { depth = 0 }
        guard let store = episodes.store else {
            return PageDocument.error(404, "blocking episodes are off: serve runs with --sample.interval 0", depth: depth)
        }
        do {
            switch request {
            case .badQuery(let line):
                return PageDocument.error(400, line)
            case .noSuchEpisode:
                return PageDocument.error(404, "no such episode", depth: 1)
            case .one(let id):
                guard let record = try store.episode(id: id) else { return PageDocument.error(404, "no such episode", depth: 1) }
                return EpisodesPage.one(record).response
            case .list(let query):
                let records = try store.episodes(
                    since: query.sinceTimestamp(now: .now()), datname: query.datname, target: query.target, ongoing: query.ongoing,
                    limit: query.limit)
                return EpisodesPage.list(records, query: query).response
            }
        } catch {
            return PageDocument.error(503, error.description, depth: depth)
        }
    }

    private func metrics(_ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", ExpositionWriter.contentType)], body: body)
    }

    private var targetsHTML: String {
        if let collector {
            return "<p>Target: <code>\(HTMLText.escape(ConnectionString.redacted(collector.settings.dsn)))</code></p>"
        } else {
            return "<p>Targets:</p><ul>"
                + targets.keys.sorted().map { name in
                    "<li><a href=\"\(Self.probePath)?target=\(HTMLText.escape(name))\">\(HTMLText.escape(name))</a>: <code>\(HTMLText.escape(ConnectionString.redacted(targets[name]!.settings.dsn)))</code></li>"
                }.joined() + "</ul>"
        }
    }

    var landingPage: String {
        """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>pg_lock_exporter</title></head>
        <body>
        <h1>pg_lock_exporter \(BuildInfo.version)</h1>
        <p>Prometheus exporter for PostgreSQL sessions, locks and blocking chains.</p>
        \(targetsHTML)
        <ul><li><a href="tree">Blocking trees now</a></li>\(episodes.store == nil ? "" : "<li><a href=\"episodes\">Blocking episodes</a> (<a href=\"\(EpisodeAPI.path.dropFirst())\">JSON</a>)</li>")<li><a href="\(HTMLText.escape(telemetryPath))">Metrics</a></li></ul>
        </body></html>

        """
    }
}
