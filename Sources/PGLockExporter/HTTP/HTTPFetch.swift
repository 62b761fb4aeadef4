import CCurl

/// One bounded HTTP(S) GET through libcurl: what `pg_lock_exporter episodes --url` reads a running
/// exporter's API with.
///
/// Bounded and strict: a connect timeout and a total timeout, at most `maximumBodyBytes` of body,
/// only `http` and `https`, no redirects, and TLS verified (against `caFile` when given). A URL
/// that carries credentials (`https://user:pass@…`) is refused: the password comes from a file
/// or the environment, never the command line, and goes to libcurl alone.
public struct HTTPFetch: Sendable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var username: String?
    public var password: String?
    public var connectTimeout: TimeSpan = .seconds(5)
    public var totalTimeout: TimeSpan = .seconds(10)
    public var maximumBodyBytes = 64 << 20

    public init() {}

    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// One line saying what failed; it never quotes a password.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Refuses a URL that is not `http://` or `https://`, or that names a user or password.
    public static func validate(_ url: String) throws(Failure) {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw Failure(description: "\(TerminalText.excerpt(url, limit: 200)): only http:// and https:// URLs")
        }
        let authority = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false).dropFirst(2).first ?? ""
        guard !authority.contains("@") else {
            throw Failure(description: "the URL carries credentials: give the user with --http.username and the password in a file or the environment")
        }
    }

    /// `url` must pass `validate`.
    public func get(_ url: String) throws(Failure) -> Response {
        let shown = TerminalText.excerpt(url, limit: 200)
        try Self.validate(url)
        guard let handle = curl_easy_init() else { throw Failure(description: "libcurl could not start") }
        defer { curl_easy_cleanup(handle) }
        let body = ResponseBody(limit: maximumBodyBytes)
        var setup = [
            ccurl_set_string(handle, CURLOPT_URL, url),
            ccurl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"),
            ccurl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0),
            ccurl_set_long(handle, CURLOPT_NOSIGNAL, 1),
            ccurl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectTimeout.milliseconds),
            ccurl_set_long(handle, CURLOPT_TIMEOUT_MS, totalTimeout.milliseconds),
            ccurl_set_long(handle, CURLOPT_SSL_VERIFYPEER, 1),
            ccurl_set_long(handle, CURLOPT_SSL_VERIFYHOST, 2),
            ccurl_set_string(handle, CURLOPT_USERAGENT, "pg_lock_exporter/\(BuildInfo.version)"),
        ]
        if let caFile { setup.append(ccurl_set_string(handle, CURLOPT_CAINFO, caFile)) }
        if let certificateFile { setup.append(ccurl_set_string(handle, CURLOPT_SSLCERT, certificateFile)) }
        if let keyFile { setup.append(ccurl_set_string(handle, CURLOPT_SSLKEY, keyFile)) }
        if let username {
            setup.append(ccurl_use_basic_auth(handle))
            setup.append(ccurl_set_string(handle, CURLOPT_USERNAME, username))
            setup.append(ccurl_set_string(handle, CURLOPT_PASSWORD, password ?? ""))
        }
        guard setup.allSatisfy({ $0 == CURLE_OK }) else { throw Failure(description: "libcurl refused an option") }
        let code = withExtendedLifetime(body) {
            _ = ccurl_set_write(handle, httpFetchWrite, Unmanaged.passUnretained(body).toOpaque())
            return curl_easy_perform(handle)
        }
        if body.overflowed { throw Failure(description: "\(shown): the answer is larger than \(maximumBodyBytes) bytes") }
        guard code == CURLE_OK else {
            throw Failure(description: "\(shown): \(String(cString: curl_easy_strerror(code)))")
        }
        var status = 0
        _ = ccurl_response_code(handle, &status)
        return Response(status: status, body: body.bytes)
    }
}

/// The body as it arrives; the write callback's context. Used by one thread, during one
/// `curl_easy_perform`.
private final class ResponseBody {
    var bytes: [UInt8] = []
    var overflowed = false
    let limit: Int
    init(limit: Int) { self.limit = limit }
}

/// libcurl's write callback: appends, or returns 0 (libcurl then fails the transfer) past the limit.
private func httpFetchWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let data, let context else { return 0 }
    let body = Unmanaged<ResponseBody>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    guard body.bytes.count + length <= body.limit else {
        body.overflowed = true
        return 0
    }
    body.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    return length
}
