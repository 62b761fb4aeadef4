import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The migration command, started with `posix_spawnp`. Its stdout and stderr come through pipes
/// that two threads copy, unchanged, to ours while scanning them for lock-failure texts.
/// Standard input is inherited. The child starts with default signal dispositions and an empty
/// signal mask whatever the guard blocks or ignores.
public final class MigrationChild: Sendable {
    public struct SpawnError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public let pid: pid_t
    private let scanner = Mutex(LockFailureScanner())
    private let copying = DispatchGroup()
    private let status = Mutex<Int32?>(nil)

    /// Starts `command` (searched in `PATH` as a shell would) with exactly `environment`.
    public init(command: [String], environment: [String: String]) throws(SpawnError) {
        guard let executable = command.first else { throw SpawnError(description: "no command given") }
        var out: [Int32] = [-1, -1]
        var err: [Int32] = [-1, -1]
        guard Self.closeOnExecPipe(&out) else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        guard Self.closeOnExecPipe(&err) else {
            close(out[0]); close(out[1])
            throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the new descriptor; the originals close at exec.
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let result = posix_spawnp(&child, executable, &actions, &attributes, argv, envp)
        close(out[1])
        close(err[1])
        guard result == 0 else {
            close(out[0]); close(err[0])
            throw SpawnError(description: "cannot run \"\(executable)\": \(String(cString: strerror(result)))")
        }
        pid = child
        copy(from: out[0], to: 1)
        copy(from: err[0], to: 2)
    }

    /// A pipe whose two ends close at exec (the child gets copies through dup2). Set before any
    /// other process is spawned: the guard starts one child at a time from one thread.
    private static func closeOnExecPipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    /// Copies everything from `source` to `target` until end of file, feeding the scanner. A
    /// target that fails (a closed terminal) does not stop the reading, so the child never
    /// blocks on a full pipe.
    private func copy(from source: Int32, to target: Int32) {
        copying.enter()
        DispatchQueue.global().async { [self] in
            defer {
                close(source)
                copying.leave()
            }
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var targetOK = true
            while true {
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                let chunk = buffer[0..<count]
                if targetOK { targetOK = Self.writeAll(chunk, to: target) }
                scanner.withLock { $0.feed(chunk) }
            }
        }
    }

    private static func writeAll(_ bytes: ArraySlice<UInt8>, to fd: Int32) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            let written = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            rest = rest.dropFirst(written)
        }
        return true
    }

    /// The exit status once the child has ended (128 + N when signal N ended it); nil while it
    /// runs. Never blocks.
    public func exitStatus() -> Int32? {
        if let known = status.withLock({ $0 }) { return known }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        guard result == pid else { return nil }
        let code = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status.withLock { $0 = code }
        return code
    }

    public func send(_ signal: Int32) {
        if status.withLock({ $0 }) == nil { kill(pid, signal) }
    }

    /// Waits (up to `timeoutSeconds`) until the output is copied: a grandchild that kept the
    /// pipes open must not hold the guard.
    public func finishOutput(timeoutSeconds: Double) {
        _ = copying.wait(timeout: .now() + timeoutSeconds)
    }

    /// The first lock-failure text seen in the child's stdout or stderr.
    public var lockFailureMarker: String? { scanner.withLock { $0.marker } }

    /// Where `name` is found as an executable, the way `posix_spawnp` looks (a name with a slash
    /// is a path); nil when it is not there.
    public static func resolve(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in (path ?? "/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
            var info = stat()
            if stat(candidate, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
