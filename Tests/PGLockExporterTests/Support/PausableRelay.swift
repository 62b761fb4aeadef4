import Foundation
import Synchronization

/// A TCP relay on loopback that can stop forwarding: while paused it still accepts connections
/// (the kernel completes the handshake) but moves no byte in either direction. That is a real
/// network blackhole between a client and PostgreSQL, with no root and no namespace needed.
final class PausableRelay: Sendable {
    let port: Int
    private let targetPort: Int
    private let listener: Int32
    private let paused = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    /// The relay's own address towards the target (`from:`), nil for the kernel's choice.
    private let sourceAddress: String?
    /// The source ports of the relayed connections towards the target, in accept order: with
    /// `sourceAddress`, the client address and port the target sees.
    private let outbound = Mutex<[Int]>([])

    /// Relays 127.0.0.1:`port` to 127.0.0.1:`targetPort`; with `sourceAddress` (another loopback
    /// address, such as 127.0.0.2), the relay binds its side to it before connecting, so the
    /// target sees a client at that address: an application host apart from the pooler's.
    init(to targetPort: Int, from sourceAddress: String? = nil) throws {
        self.targetPort = targetPort
        self.sourceAddress = sourceAddress
        (listener, port) = try listenOnLoopback()
        Thread.detachNewThread { self.acceptLoop() }
    }

    /// The source ports towards the target so far.
    var outboundPorts: [Int] { outbound.withLock { $0 } }

    func pause() { paused.store(true, ordering: .sequentiallyConsistent) }
    func resume() { paused.store(false, ordering: .sequentiallyConsistent) }

    /// Stops accepting and forwarding; open relayed connections are closed.
    func stop() {
        if !stopped.exchange(true, ordering: .sequentiallyConsistent) { close(listener) }
    }

    deinit { stop() }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if let sourceAddress {
                var source = sockaddr_in()
                source.sin_family = sa_family_t(AF_INET)
                source.sin_addr.s_addr = inet_addr(sourceAddress)
                _ = withUnsafePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(server)
                continue
            }
            var local = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) }
            }
            outbound.withLock { $0.append(Int(UInt16(bigEndian: local.sin_port))) }
            let pair = RelayedConnection(client: client, server: server)
            Thread.detachNewThread { self.pump(from: pair.client, to: pair.server, pair) }
            Thread.detachNewThread { self.pump(from: pair.server, to: pair.client, pair) }
        }
    }

    /// Both sockets of one relayed connection; closed when both pumps are done with it.
    private final class RelayedConnection: Sendable {
        let client: Int32
        let server: Int32
        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }
        /// Ends both directions (the other pump then sees the end too).
        func shutdownBoth() {
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
        }
        deinit {
            close(client)
            close(server)
        }
    }

    /// Copies bytes one way until either side closes or the relay stops; moves nothing while paused.
    private func pump(from source: Int32, to destination: Int32, _ pair: RelayedConnection) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopped.load(ordering: .relaxed) {
            if paused.load(ordering: .relaxed) {
                usleep(20_000)
                continue
            }
            var descriptor = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            if paused.load(ordering: .relaxed) { continue }
            let n = recv(source, &buffer, buffer.count, 0)
            if n <= 0 { break }
            var sent = 0
            while sent < n {
                let m = buffer[sent..<n].withUnsafeBytes { send(destination, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break }
                sent += m
            }
            if sent < n { break }
        }
        pair.shutdownBoth()
    }
}
