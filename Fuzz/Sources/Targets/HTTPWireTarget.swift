import PGLockExporter

#if canImport(Glibc)
import Glibc
#endif

/// Raw bytes on the wire to the real HTTP server (libmicrohttpd with the exporter's callbacks),
/// started once in this process on a loopback port: request lines, headers, bodies, chunked
/// encodings, pipelining and garbage as a hostile client sends them.
///
/// Invariants: the connection ends within 5 s with an HTTP answer or none; only the route that
/// takes a body (the webhook's) is ever handed one, and never one over the cap; the server never
/// crashes (ASan watches its threads too).
enum HTTPWireTarget {
    static let maxBodyBytes = 4096

    /// `serve`'s routes in multi-target mode (one target, whose socket does not exist, so a
    /// probe fails at once) behind the real preflight, and a webhook path that takes bodies.
    static let server: HTTPServer = {
        let routes = ScrapeRouteTarget.routes.multi
        var limits = HTTPServerLimits()
        limits.maxBodyBytes = maxBodyBytes
        limits.maxTotalBodyBytes = 4 * maxBodyBytes
        limits.connectionTimeoutSeconds = 2
        let webhook = "/webhook/alertmanager"
        do {
            return try HTTPServer(
                address: ListenAddress(host: "127.0.0.1", port: 0), limits: limits,
                preflight: { $0.path == webhook ? nil : routes.preflight($0) },
                acceptsBody: { $0.path == webhook && $0.method == "POST" }
            ) { request in
                FuzzCheck.require(request.body.isEmpty || request.path == webhook, "\(request.path.debugDescription) was handed a body")
                FuzzCheck.require(request.body.count <= maxBodyBytes, "a body of \(request.body.count) bytes passed the cap")
                guard request.path == webhook else { return routes.handle(request) }
                return .text(200, "ok \(request.body.count)\n")
            }
        } catch {
            fatalError("the fuzz target's server did not start: \(error)")
        }
    }()

    static let target = FuzzTarget(name: "http-wire") { bytes in
        let answer = exchange(bytes, port: server.port)
        FuzzCheck.require(answer != nil, "the connection was still open 5 s after the request was sent")
        if let answer, !answer.isEmpty {
            FuzzCheck.require(answer.starts(with: Array("HTTP/1.".utf8)), "not an HTTP answer: \(String(decoding: answer.prefix(40), as: UTF8.self).debugDescription)")
        }
    }

    /// Sends the bytes, closes the sending side and reads until the server closes; nil when it
    /// has not closed within 5 s.
    static func exchange(_ bytes: [UInt8], port: UInt16) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { fatalError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            // A signal (libFuzzer's own timer) can interrupt connect; the connection then goes
            // on by itself: wait until it is writable and read its outcome.
            guard errno == EINTR else { fatalError("connect: \(errno)") }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var outcome: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard poll(&poller, 1, 5000) == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &outcome, &length) == 0, outcome == 0 else {
                fatalError("connect after EINTR: \(outcome)")
            }
        }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may answer and close before reading everything
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(left.components.seconds * 1000 + 1))
            if ready <= 0 { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return answer }
            answer.append(contentsOf: buffer[..<n])
        }
    }
}
