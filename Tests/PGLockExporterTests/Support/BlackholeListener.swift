import Foundation

/// A TCP port on 127.0.0.1 that completes the handshake (the kernel queues the connection) but
/// never answers: a PostgreSQL that hangs on connect, without touching any other address.
final class BlackholeListener {
    let port: Int
    private let fd: Int32

    init() throws {
        (fd, port) = try listenOnLoopback()
    }

    deinit { close(fd) }
}

/// A listening TCP socket on 127.0.0.1 at a port the kernel picks.
func listenOnLoopback() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 64) == 0 else {
        close(fd)
        throw TestFailure("cannot listen on 127.0.0.1")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
