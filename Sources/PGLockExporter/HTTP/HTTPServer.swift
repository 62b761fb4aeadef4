import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits that keep slow or abusive clients from starving Prometheus's scrape.
public struct HTTPServerLimits: Sendable {
    /// Seconds an idle or slow connection may stay open.
    public var connectionTimeoutSeconds: UInt32 = 30
    /// Connections served at once (each gets a thread).
    public var maxConnections: UInt32 = 256
    /// 0 = no per-client limit (Prometheus HA pairs and probes share addresses).
    public var maxConnectionsPerClient: UInt32 = 0
    /// Bytes of request line plus headers per connection.
    public var maxHeaderBytes: Int = 32 * 1024
    /// Larger request bodies are answered with 413 without being stored.
    public var maxBodyBytes: Int = 1 << 20
    /// Bytes of request bodies buffered across all connections together; a body that does not
    /// fit gets 503 without being stored. 256 connections × 1 MiB would be 256 MiB otherwise.
    public var maxTotalBodyBytes: Int = 8 << 20

    public init() {}
}

/// PEM text for HTTPS; with `clientCA`, clients must present a certificate it signed.
public struct TLSMaterial: Sendable {
    public var certificatePEM: String
    public var keyPEM: String
    public var clientCAPEM: String?
    /// A GnuTLS priority string (selects the minimum protocol version).
    public var priorities: String?

    public init(certificatePEM: String, keyPEM: String, clientCAPEM: String? = nil, priorities: String? = nil) {
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
        self.clientCAPEM = clientCAPEM
        self.priorities = priorities
    }
}

/// An HTTP server on libmicrohttpd: one thread per connection, so a slow scrape (which waits on
/// libpq) never delays another request. Requests are handed to `handler` whole, body included.
///
/// Before any of the body is read, `preflight` sees the request line and headers (with
/// `bodyTooLarge` set when `Content-Length` exceeds the cap) and may answer at once: a client
/// without credentials, or with a body over the cap, gets its 401 or 413 while it is still
/// sending, and the rest of its body is never read. Then only a request that `acceptsBody` has
/// its body read (`BodyAdmission`): any other that announces one (`Content-Length` > 0 or a
/// `Transfer-Encoding`) gets 413 from its headers. A body that is read books its bytes against
/// `maxTotalBodyBytes` shared by all connections first, and gets 503 when they do not fit.
public final class HTTPServer: Sendable {
    /// The handler runs on libmicrohttpd's threads; it may block.
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse
    /// Answers a request from its headers alone, or returns nil to read the body and go on.
    public typealias Preflight = @Sendable (HTTPRequest) -> HTTPResponse?
    /// Whether a request (headers only) takes a body at all.
    public typealias AcceptsBody = @Sendable (HTTPRequest) -> Bool

    // The daemon handle is written once in init and only read by stop(), guarded by `stopped`.
    nonisolated(unsafe) private let daemon: OpaquePointer
    private let context: Unmanaged<HTTPServerContext>
    private let stopped = Mutex(false)
    /// The port actually bound (useful with port 0).
    public let port: UInt16

    public init(
        address: ListenAddress, limits: HTTPServerLimits = HTTPServerLimits(), tls: TLSMaterial? = nil,
        preflight: Preflight? = nil, acceptsBody: @escaping AcceptsBody = { _ in false }, handler: @escaping Handler
    ) throws(HTTPServerError) {
        let context = Unmanaged.passRetained(
            HTTPServerContext(
                handler: handler, preflight: preflight, acceptsBody: acceptsBody, maxBodyBytes: limits.maxBodyBytes,
                bodyBudget: BodyBudget(capacity: limits.maxTotalBodyBytes)))
        var flags = MHD_USE_AUTO.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
            | MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_ITC.rawValue
        if tls != nil { flags |= MHD_USE_TLS.rawValue }
        let started: OpaquePointer?
        do {
            started = try address.withSocketAddress { socketAddress in
                Self.start(flags: flags, address: address, socketAddress: socketAddress, limits: limits,
                           tls: tls, context: context)
            }
        } catch {
            context.release()
            throw error
        }
        guard let started else {
            context.release()
            let reason = String(cString: strerror(errno))
            throw .cannotListen("cannot listen on \(address)\(tls != nil ? " with TLS" : ""): \(reason)")
        }
        self.daemon = started
        self.context = context
        self.port = cmhd_bound_port(started)
    }

    private static func start(
        flags: UInt32, address: ListenAddress, socketAddress: UnsafePointer<sockaddr>?, limits: HTTPServerLimits,
        tls: TLSMaterial?, context: Unmanaged<HTTPServerContext>
    ) -> OpaquePointer? {
        func attempt(_ flags: UInt32) -> OpaquePointer? {
            withOptionalCString(tls?.keyPEM) { key in
                withOptionalCString(tls?.certificatePEM) { cert in
                    withOptionalCString(tls?.clientCAPEM) { ca in
                        withOptionalCString(tls?.priorities) { priorities in
                            var options = cmhd_daemon_options(
                                bind_address: socketAddress,
                                connection_timeout: limits.connectionTimeoutSeconds,
                                connection_limit: limits.maxConnections,
                                per_ip_connection_limit: limits.maxConnectionsPerClient,
                                connection_memory_limit: limits.maxHeaderBytes,
                                completed: httpRequestCompleted, completed_cls: nil,
                                tls_key_pem: key, tls_cert_pem: cert, tls_client_ca_pem: ca,
                                tls_priorities: priorities)
                            return cmhd_start_daemon(
                                flags, address.port, httpAccessHandler, context.toOpaque(), &options)
                        }
                    }
                }
            }
        }
        if socketAddress == nil {
            // Every address: IPv6 and IPv4 on one socket, or IPv4 alone where IPv6 is disabled.
            return attempt(flags | MHD_USE_DUAL_STACK.rawValue) ?? attempt(flags)
        }
        if socketAddress!.pointee.sa_family == sa_family_t(AF_INET6) {
            return attempt(flags | MHD_USE_IPv6.rawValue)
        }
        return attempt(flags)
    }

    /// Stops accepting, waits for the handlers that are running, and frees the daemon. Idempotent.
    public func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        MHD_stop_daemon(daemon)  // joins libmicrohttpd's threads: no handler runs after this
        context.release()
    }

    deinit { stop() }
}

private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}

/// What the C callbacks need: the Swift handlers and the body caps. Immutable (the budget is
/// itself Sendable), so Sendable.
final class HTTPServerContext: Sendable {
    let handler: HTTPServer.Handler
    let preflight: HTTPServer.Preflight?
    let acceptsBody: HTTPServer.AcceptsBody
    let maxBodyBytes: Int
    let bodyBudget: BodyBudget

    init(
        handler: @escaping HTTPServer.Handler, preflight: HTTPServer.Preflight?, acceptsBody: @escaping HTTPServer.AcceptsBody,
        maxBodyBytes: Int, bodyBudget: BodyBudget
    ) {
        self.handler = handler
        self.preflight = preflight
        self.acceptsBody = acceptsBody
        self.maxBodyBytes = maxBodyBytes
        self.bodyBudget = bodyBudget
    }
}

/// Per-request state kept in libmicrohttpd's `*con_cls` while a body arrives. Only the thread
/// serving that connection touches it; the bytes it booked go back to the budget when
/// libmicrohttpd ends the request (`httpRequestCompleted` releases it).
final class RequestBody {
    let budget: BodyBudget
    var bytes: [UInt8] = []
    /// Bytes booked against `budget`: at least `bytes.count` while the body is kept.
    private(set) var reserved = 0
    var tooLarge = false
    /// The shared budget had no room: the body is dropped and the answer is 503.
    var overBudget = false
    /// `BodyAdmission` let the body be read; bytes arriving otherwise are dropped.
    var admitted = false
    /// A response was queued from the headers alone: whatever body still arrives is dropped.
    var answered = false

    init(budget: BodyBudget) { self.budget = budget }

    /// Books `total` bytes in all for this body; false when the budget has no room.
    func reserve(upTo total: Int) -> Bool {
        guard total > reserved else { return true }
        guard budget.reserve(total - reserved) else { return false }
        reserved = total
        return true
    }

    /// Drops what was stored and gives its booking back.
    func drop() {
        bytes = []
        budget.release(reserved)
        reserved = 0
    }

    deinit { budget.release(reserved) }
}

/// Collects key/value pairs from `MHD_get_connection_values`.
final class KeyValueCollector {
    var values: [String: String] = [:]
    /// Every pair in the order libmicrohttpd gives them, repeats included.
    var pairs: [HTTPRequest.QueryArgument] = []
    let lowercaseKeys: Bool
    init(lowercaseKeys: Bool) { self.lowercaseKeys = lowercaseKeys }
}

// The C entry points are nonisolated top-level functions: libmicrohttpd calls them on its own
// threads, where a closure isolated to the main actor would trap.

nonisolated func httpAccessHandler(
    cls: UnsafeMutableRawPointer?, connection: OpaquePointer?, url: UnsafePointer<CChar>?,
    method: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?, uploadData: UnsafePointer<CChar>?,
    uploadDataSize: UnsafeMutablePointer<Int>?, requestState: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let requestState, let uploadDataSize else { return .NO }
    let context = Unmanaged<HTTPServerContext>.fromOpaque(cls).takeUnretainedValue()

    // First call: headers only. The preflight may answer now, before any of the body is read;
    // then the body is admitted (and its announced length booked) or refused; an admitted body
    // is kept for the calls that bring the upload.
    guard let stateRaw = requestState.pointee else {
        let body = RequestBody(budget: context.bodyBudget)
        requestState.pointee = Unmanaged.passRetained(body).toOpaque()
        var head = makeRequest(connection, url: url, method: method, body: [], tooLarge: false)
        let announced = AnnouncedBody(headers: head.headers)
        if case .length(let length) = announced { head.bodyTooLarge = length > context.maxBodyBytes }
        var early = context.preflight?(head)
        if early == nil {
            switch BodyAdmission.decide(announced, acceptsBody: context.acceptsBody(head), maxBodyBytes: context.maxBodyBytes) {
            case .noBody:
                break
            case .refuse(let status):
                early = BodyAdmission.response(status: status)
            case .read(let reserve):
                if body.reserve(upTo: reserve ?? 0) {
                    body.admitted = true
                    body.bytes.reserveCapacity(reserve ?? 0)  // the booked size, not twice it by doubling
                } else {
                    early = BodyAdmission.response(status: 503)
                }
            }
        }
        guard let early else { return .YES }
        body.answered = true
        return queue(early, on: connection)
    }
    let body = Unmanaged<RequestBody>.fromOpaque(stateRaw).takeUnretainedValue()
    if body.answered {
        uploadDataSize.pointee = 0
        return .YES
    }
    if uploadDataSize.pointee > 0 {
        let size = uploadDataSize.pointee
        if !body.admitted || body.tooLarge || body.overBudget {
            // not admitted, or already dropped: discard the rest as it arrives
        } else if body.bytes.count + size > context.maxBodyBytes {
            body.tooLarge = true
            body.drop()
        } else if !body.reserve(upTo: body.bytes.count + size) {
            body.overBudget = true
            body.drop()
        } else if let uploadData {
            uploadData.withMemoryRebound(to: UInt8.self, capacity: size) {
                body.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: size))
            }
        }
        uploadDataSize.pointee = 0
        return .YES
    }

    if body.overBudget { return queue(BodyAdmission.response(status: 503), on: connection) }
    let request = makeRequest(connection, url: url, method: method, body: body.bytes, tooLarge: body.tooLarge)
    return queue(context.handler(request), on: connection)
}

private func makeRequest(
    _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?, body: [UInt8], tooLarge: Bool
) -> HTTPRequest {
    let fullURL = url.map { String(cString: $0) } ?? "/"
    let path = fullURL.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
    let arguments = collectPairs(connection, .GET_ARGUMENT_KIND, lowercaseKeys: false)
    return HTTPRequest(
        method: method.map { String(cString: $0) } ?? "",
        path: path,
        query: arguments.values, queryArguments: arguments.pairs,
        headers: collectValues(connection, .HEADER_KIND, lowercaseKeys: true),
        body: body, bodyTooLarge: tooLarge,
        clientCertificate: [-1: .invalid, 0: .none, 1: .verified][cmhd_client_certificate_status(connection)] ?? .notTLS)
}

nonisolated func httpRequestCompleted(
    cls: UnsafeMutableRawPointer?, connection: OpaquePointer?,
    requestState: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, reason: MHD_RequestTerminationCode
) {
    guard let requestState, let raw = requestState.pointee else { return }
    Unmanaged<RequestBody>.fromOpaque(raw).release()
    requestState.pointee = nil
}

nonisolated func httpCollectValue(
    cls: UnsafeMutableRawPointer?, kind: MHD_ValueKind, key: UnsafePointer<CChar>?, value: UnsafePointer<CChar>?
) -> MHD_Result {
    guard let cls, let key else { return .YES }
    let collector = Unmanaged<KeyValueCollector>.fromOpaque(cls).takeUnretainedValue()
    var name = String(cString: key)
    if collector.lowercaseKeys { name = name.lowercased() }
    let text = value.map { String(cString: $0) }
    collector.values[name] = text ?? ""
    collector.pairs.append(HTTPRequest.QueryArgument(name: name, value: text))
    return .YES
}

private func collectValues(_ connection: OpaquePointer, _ kind: MHD_ValueKind, lowercaseKeys: Bool) -> [String: String] {
    collectPairs(connection, kind, lowercaseKeys: lowercaseKeys).values
}

private func collectPairs(_ connection: OpaquePointer, _ kind: MHD_ValueKind, lowercaseKeys: Bool) -> KeyValueCollector {
    let collector = KeyValueCollector(lowercaseKeys: lowercaseKeys)
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(connection, kind, httpCollectValue, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector
}

private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
    let created = response.body.withUnsafeBytes { bytes in
        MHD_create_response_from_buffer(
            bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
    }
    guard let created else { return .NO }
    for (name, value) in response.headers {
        _ = MHD_add_response_header(created, name, value)
    }
    let result = MHD_queue_response(connection, UInt32(response.status), created)
    MHD_destroy_response(created)
    return result
}
