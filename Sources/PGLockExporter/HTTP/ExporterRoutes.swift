/// The exporter's HTTP surface: a landing page at `/`, the metrics at the telemetry path,
/// 404 elsewhere, 405 for anything but GET and HEAD.
public struct ExporterRoutes: Sendable {
    public let telemetryPath: String
    public let collector: Collector

    public init(telemetryPath: String, collector: Collector) {
        self.telemetryPath = telemetryPath
        self.collector = collector
    }

    /// Prometheus sends its scrape timeout; answer a little before it so the reply arrives.
    static let timeoutMarginSeconds = 0.5

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        guard request.path == "/" || request.path == telemetryPath || request.path == "/-/healthy" else {
            return .notFound()
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return .methodNotAllowed(allowed: "GET, HEAD")
        }
        switch request.path {
        case telemetryPath:
            let timeout = request.headers["x-prometheus-scrape-timeout-seconds"].flatMap(Double.init)
                .map { max(0.5, $0 - Self.timeoutMarginSeconds) }
            return HTTPResponse(
                status: 200, headers: [("Content-Type", ExpositionWriter.contentType)],
                body: collector.scrape(timeoutSeconds: timeout))
        case "/-/healthy":
            return .text(200, "OK\n")
        default:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(landingPage.utf8))
        }
    }

    var landingPage: String {
        """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>pg_lock_exporter</title></head>
        <body>
        <h1>pg_lock_exporter \(BuildInfo.version)</h1>
        <p>Prometheus exporter for PostgreSQL sessions, locks and blocking chains.</p>
        <p>Target: <code>\(Self.html(ConnectionString.redacted(collector.settings.dsn)))</code></p>
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
