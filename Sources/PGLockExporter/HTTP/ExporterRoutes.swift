/// The exporter's HTTP surface: a landing page at `/`, the metrics at the telemetry path,
/// 404 elsewhere, 405 for anything but GET and HEAD.
///
/// With one target, the telemetry path serves it. With named targets (`--config.file`),
/// `/probe?target=NAME` serves one of them (the multi-target exporter pattern) and the telemetry
/// path serves only the exporter's own metrics.
public struct ExporterRoutes: Sendable {
    public let telemetryPath: String
    /// The single target, or nil in multi-target mode.
    public let collector: Collector?
    public let targets: [String: Collector]
    /// A scrape's budget when the request does not say (`--web.scrape-timeout`): Prometheus's own
    /// default scrape timeout, 10 s.
    public let defaultScrapeTimeoutSeconds: Double

    public init(telemetryPath: String, collector: Collector, defaultScrapeTimeoutSeconds: Double = 10) {
        self.telemetryPath = telemetryPath
        self.collector = collector
        self.targets = [:]
        self.defaultScrapeTimeoutSeconds = defaultScrapeTimeoutSeconds
    }

    public init(telemetryPath: String, targets: [String: Collector], defaultScrapeTimeoutSeconds: Double = 10) {
        self.telemetryPath = telemetryPath
        self.collector = nil
        self.targets = targets
        self.defaultScrapeTimeoutSeconds = defaultScrapeTimeoutSeconds
    }

    public static let probePath = "/probe"

    /// Prometheus sends its scrape timeout; answer a little before it so the reply arrives.
    static let timeoutMarginSeconds = 0.5

    /// The scrape's budget: Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` less the margin
    /// (at least a quarter of a second), else the default less the margin.
    func budgetSeconds(_ request: HTTPRequest) -> Double {
        let sent = request.headers["x-prometheus-scrape-timeout-seconds"].flatMap(Double.init).flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        let timeout = sent ?? defaultScrapeTimeoutSeconds
        return max(0.25, min(timeout - Self.timeoutMarginSeconds, timeout * 0.9))
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let probe = collector == nil && request.path == Self.probePath
        guard request.path == "/" || request.path == telemetryPath || request.path == "/-/healthy" || probe else {
            return .notFound()
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return .methodNotAllowed(allowed: "GET, HEAD")
        }
        let budget = budgetSeconds(request)
        switch request.path {
        case Self.probePath where probe:
            guard let name = request.query["target"], !name.isEmpty else {
                return .text(400, "the target parameter is missing: /probe?target=NAME\n")
            }
            guard let target = targets[name] else {
                return .text(400, "unknown target \"\(name.prefix(100))\"; known: \(targets.keys.sorted().joined(separator: ", "))\n")
            }
            return metrics(target.scrape(budget: .seconds(budget), processMetrics: false))
        case telemetryPath:
            guard let collector else {
                var w = ExpositionWriter()
                Collector.writeProcessMetrics(into: &w)
                return metrics(w.bytes)
            }
            return metrics(collector.scrape(budget: .seconds(budget)))
        case "/-/healthy":
            return .text(200, "OK\n")
        default:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(landingPage.utf8))
        }
    }

    private func metrics(_ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", ExpositionWriter.contentType)], body: body)
    }

    private var targetsHTML: String {
        if let collector {
            return "<p>Target: <code>\(Self.html(ConnectionString.redacted(collector.settings.dsn)))</code></p>"
        } else {
            return "<p>Targets:</p><ul>"
                + targets.keys.sorted().map { name in
                    "<li><a href=\"\(Self.probePath)?target=\(Self.html(name))\">\(Self.html(name))</a>: <code>\(Self.html(ConnectionString.redacted(targets[name]!.settings.dsn)))</code></li>"
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
        <ul><li><a href="\(Self.html(telemetryPath))">Metrics</a></li></ul>
        </body></html>

        """
    }

    static func html(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }
}
