#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `poll()` on one socket until it is ready or a deadline passes.
enum SocketWait {
    enum Outcome: Equatable {
        case ready, timedOut
        case failed(String)
    }

    static func wait(_ socket: Int32, read: Bool, write: Bool, until deadline: Deadline) -> Outcome {
        guard socket >= 0 else { return .failed("no socket") }
        var events: Int16 = 0
        if read { events |= Int16(POLLIN) }
        if write { events |= Int16(POLLOUT) }
        while true {
            if deadline.hasPassed { return .timedOut }
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let result = poll(&descriptor, 1, deadline.pollMilliseconds)
            if result > 0 { return .ready }  // errors and hang-ups are read by libpq itself
            if result == 0 { return .timedOut }
            if errno != EINTR { return .failed(String(cString: strerror(errno))) }
        }
    }
}
