/// One HTTP request as the handler sees it: copied out of libmicrohttpd, safe to keep.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query string, e.g. `/metrics`.
    public var path: String
    /// Query-string arguments (`/probe?target=a`), decoded by libmicrohttpd; a repeated name
    /// keeps one value.
    public var query: [String: String]
    /// The same arguments in the order sent, repeats included; the value is nil for a name
    /// without `=`. For parsers that must refuse what `query` folds away (`EpisodeQuery`).
    public var queryArguments: [QueryArgument]

    public struct QueryArgument: Sendable, Equatable {
        public var name: String
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }
    /// Header names are lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    /// True when the body was larger than the server's cap; `body` is then empty.
    public var bodyTooLarge: Bool
    /// The TLS client certificate, as libmicrohttpd and GnuTLS saw it.
    public var clientCertificate: ClientCertificate

    public enum ClientCertificate: Sendable, Equatable {
        case notTLS, none, verified, invalid
    }

    public init(
        method: String, path: String, query: [String: String] = [:], queryArguments: [QueryArgument]? = nil,
        headers: [String: String] = [:], body: [UInt8] = [], bodyTooLarge: Bool = false, clientCertificate: ClientCertificate = .notTLS
    ) {
        self.queryArguments = queryArguments ?? query.sorted { $0.key < $1.key }.map { QueryArgument(name: $0.key, value: $0.value) }
        self.clientCertificate = clientCertificate
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.bodyTooLarge = bodyTooLarge
    }
}

extension HTTPRequest {
    /// A header value without the optional whitespace around it, which is not part of it
    /// (RFC 9110, 5.5).
    static func trimmed(_ value: String) -> Substring {
        var text = Substring(value)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

/// A complete response; libmicrohttpd copies the bytes before the call returns.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ status: Int, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
            body: Array(text.utf8))
    }

    public static func notFound() -> HTTPResponse { .text(404, "404 page not found\n") }

    public static func methodNotAllowed(allowed: String) -> HTTPResponse {
        .text(405, "405 method not allowed\n", headers: [("Allow", allowed)])
    }
}
