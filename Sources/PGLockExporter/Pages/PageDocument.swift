/// The frame every page shares: the document head, the navigation, and the headers that make the
/// pages safe to expose next to `/metrics` (the same TLS and authentication apply: `HTTPServer`
/// guards every path).
///
/// No script of any kind: the Content-Security-Policy allows only the exporter's own stylesheet
/// (`/static/pages.css`), so nothing a server or a client wrote can run, load or frame anything,
/// and a page works air-gapped. `Cache-Control: no-store`: the pages show sessions and statements,
/// which no proxy or browser cache should keep. Links are relative, so the pages work under a
/// reverse proxy's path prefix (`--web.external-url` with a path).
public struct PageDocument {
    public var title: String
    /// How deep the page is below the root: 0 for `/tree`, 1 for `/episodes/{id}` (its links
    /// then start with `../`).
    public var depth: Int
    /// Seconds after which the browser reloads the page by itself (`<meta http-equiv="refresh">`,
    /// which needs no script); nil for none.
    public var refreshSeconds: Int?
    /// The page's content, already HTML: built only from `HTMLText.escape`d values.
    public var body: String

    public init(title: String, depth: Int = 0, refreshSeconds: Int? = nil, body: String) {
        self.title = title
        self.depth = depth
        self.refreshSeconds = refreshSeconds
        self.body = body
    }

    public static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    /// The headers of every page (and of the stylesheet).
    public static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", contentSecurityPolicy),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ]

    /// The link from this page to `path` (relative to the exporter's root, e.g. `tree`).
    public func link(_ path: String) -> String {
        let up = String(repeating: "../", count: depth) + path
        return up.isEmpty ? "./" : up
    }

    public var html: String {
        var out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        out += "<meta name=\"color-scheme\" content=\"light dark\">"
        if let refreshSeconds { out += "<meta http-equiv=\"refresh\" content=\"\(refreshSeconds)\">" }
        out += "<title>\(HTMLText.escape(title)) · pg_lock_exporter</title>"
        out += "<link rel=\"stylesheet\" href=\"\(link("static/pages.css"))\"></head>\n<body>\n"
        out += "<nav aria-label=\"pages\"><a href=\"\(link(""))\">pg_lock_exporter</a>"
        out += " <a href=\"\(link("tree"))\">Blocking trees</a> <a href=\"\(link("episodes"))\">Episodes</a></nav>\n"
        out += "<main>\n" + body + "</main>\n</body></html>\n"
        return out
    }

    public var response: HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")] + Self.securityHeaders, body: Array(html.utf8))
    }

    /// An error page (404, 400): one line, as HTML, with the same headers.
    public static func error(_ status: Int, _ line: String, depth: Int = 0) -> HTTPResponse {
        var response = PageDocument(title: "\(status)", depth: depth, body: "<h1>\(status)</h1>\n<p class=\"error\">\(HTMLText.escape(line))</p>\n").response
        response.status = status
        return response
    }
}
