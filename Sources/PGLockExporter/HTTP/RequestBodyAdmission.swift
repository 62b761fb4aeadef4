/// What a request's headers say about its body: nothing, a length, or a transfer coding
/// (`chunked`) whose length is known only at its end.
public enum AnnouncedBody: Sendable, Equatable {
    case none
    case length(Int)
    case chunked
    /// A `Content-Length` that is not a decimal number that fits in an `Int`.
    case invalid

    /// From lower-cased header names, as `HTTPRequest.headers` has them. A `Transfer-Encoding`
    /// wins over a `Content-Length` (RFC 9112, 6.3). Pure, for tests and fuzzing.
    public init(headers: [String: String]) {
        if let coding = headers["transfer-encoding"], !coding.isEmpty {
            self = .chunked
            return
        }
        guard let text = headers["content-length"].map(HTTPRequest.trimmed) else {
            self = .none
            return
        }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isWholeNumber }), let length = Int(text) else {
            self = .invalid
            return
        }
        self = length == 0 ? .none : .length(length)
    }
}

/// The decision made on a request's body from its request line and headers alone, before any
/// of the body is read: only a route that takes a body reads one, and never more than the cap.
public enum BodyAdmission: Sendable, Equatable {
    /// No body announced: nothing to read.
    case noBody
    /// Read the body; `reserve` is the announced length to book against the total budget up
    /// front (nil for a chunked body, booked as it arrives).
    case read(reserve: Int?)
    /// Answer with this status now; the body is never read.
    case refuse(status: Int)

    /// Pure, for tests and fuzzing. `acceptsBody`: whether the request's method and path take a
    /// body at all (only the remediator's webhook does).
    public static func decide(_ announced: AnnouncedBody, acceptsBody: Bool, maxBodyBytes: Int) -> BodyAdmission {
        switch announced {
        case .none: return .noBody
        case .invalid: return .refuse(status: 400)
        case _ where !acceptsBody: return .refuse(status: 413)
        case .length(let length) where length > maxBodyBytes: return .refuse(status: 413)
        case .length(let length): return .read(reserve: length)
        case .chunked: return .read(reserve: nil)
        }
    }

    /// The answer to a refusal.
    static func response(status: Int) -> HTTPResponse {
        switch status {
        case 400: return .text(400, "400 the Content-Length is not a number\n")
        case 503: return .text(503, "503 too many request bodies in flight; retry later\n", headers: [("Retry-After", "5")])
        default: return .text(413, "413 the body is larger than the limit, or this path takes none\n")
        }
    }
}
