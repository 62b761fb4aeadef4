#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `--web.listen-address` value in the Prometheus exporters' form: `:9817` (every address),
/// `127.0.0.1:9817`, `[::1]:9817` or `localhost:9817`.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// nil means every address, IPv6 and IPv4.
    public var host: String?
    public var port: UInt16

    public init(host: String?, port: UInt16) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(HTTPServerError) {
        guard let colon = text.lastIndex(of: ":") else {
            throw .invalidAddress("\"\(text)\" has no port; expected HOST:PORT or :PORT")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard let port = UInt16(portText) else {
            throw .invalidAddress("\"\(text)\": port \"\(portText)\" is not a number from 0 to 65535")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.contains(":") && !text.hasPrefix("[") {
            throw .invalidAddress("\"\(text)\": write IPv6 addresses in brackets, e.g. [::1]:\(port)")
        }
        self.host = host.isEmpty ? nil : host
        self.port = port
    }

    public var description: String {
        guard let host else { return ":\(port)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect.
    public var isLoopback: Bool {
        guard let host else { return false }
        let numericIPv4 = !host.isEmpty && host.allSatisfy { $0.isNumber || $0 == "." }
        return host == "localhost" || host == "::1" || (numericIPv4 && host.hasPrefix("127."))
    }

    /// Resolves the host to a socket address (numeric or by name) and passes it to `body`.
    func withSocketAddress<T>(_ body: (UnsafePointer<sockaddr>?) -> T) throws(HTTPServerError) -> T {
        guard let host else { return body(nil) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list, let address = first.pointee.ai_addr else {
            throw .invalidAddress("cannot resolve listen host \"\(host)\": \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        return body(UnsafePointer(address))
    }
}
