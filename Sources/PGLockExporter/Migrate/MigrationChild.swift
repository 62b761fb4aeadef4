import CProcessControl
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The migration command, started with `posix_spawnp` in a process group of its own. Its stdout
/// and stderr come through pipes that two threads copy, unchanged, to ours while scanning them
/// for lock-failure texts. Standard input is inherited (when it is the guard's foreground
/// terminal, the child's group gets the terminal for the attempt). The child starts with
/// default signal dispositions and an empty signal mask whatever the guard blocks or ignores.
///
/// Signals go to the whole group, so a grandchild gets them too. The guard is the subreaper of
/// everything below it (`becomeSubreaper`), so a process the child leaves behind stays the
/// guard's to wait for. The child itself is reaped only at `release()`, after its group is gone:
/// until then its pid (the group's id) cannot be reused, and a signal to the group cannot reach
/// a stranger.
public final class MigrationChild: Sendable {
    public struct SpawnError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// After a SIGTERM to the group, the guard waits this long for it to end, then sends SIGKILL.
    public static let gracePeriod: Duration = .seconds(10)

    /// The child's pid, and the id of its process group.
    public let pid: pid_t
    private let scanner = Mutex(LockFailureScanner())
    private let copying = DispatchGroup()
    /// The child's exit status once it has ended (seen without reaping it).
    private let status = Mutex<Int32?>(nil)
    private let released = Mutex(false)
    /// The child's group was given the guard's controlling terminal; `release` takes it back.
    private let gaveTerminal: Bool

    /// Makes the calling process the subreaper of its descendants (Linux `PR_SET_CHILD_SUBREAPER`):
    /// a process orphaned below it is re-parented to it rather than to init. False elsewhere.
    public static func becomeSubreaper() -> Bool { pg_lock_exporter_set_child_subreaper() == 0 }

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
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGTTIN, SIGTTOU] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

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
        // A child reading the terminal from a background group would stop (SIGTTIN): its group
        // becomes the foreground one, and is woken in case it already stopped.
        if isatty(0) == 1 && tcgetpgrp(0) == getpgrp() && tcsetpgrp(0, child) == 0 {
            gaveTerminal = true
            kill(-child, SIGCONT)
        } else {
            gaveTerminal = false
        }
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
    /// runs. Never blocks, and does not reap the child (`release` does).
    public func exitStatus() -> Int32? {
        if let known = status.withLock({ $0 }) { return known }
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid else { return nil }
        let value = info._sifields._sigchld.si_status
        let code = info.si_code == CLD_EXITED ? value & 0xff : 128 + value
        status.withLock { $0 = code }
        return code
    }

    /// True while any process of the migration lives: the child, or any other process below
    /// the guard (the guard starts no other; what is re-parented to it was the child's). Reaps
    /// those that have ended.
    public func groupAlive() -> Bool {
        if exitStatus() == nil { return true }
        var alive = false
        for orphan in ProcessTreePorts.children(of: getpid()) where orphan != pid {
            var raw: Int32 = 0
            if waitpid(orphan, &raw, WNOHANG) != orphan { alive = true }
        }
        return alive
    }

    /// Sends `signal` to the child's process group, until `release`.
    public func signalGroup(_ signal: Int32) {
        released.withLock { done in
            if !done { kill(-pid, signal) }
        }
    }

    /// Reaps the child once it has ended, and takes the terminal back: after this its pid may
    /// be reused and no signal is sent any more.
    public func release() {
        guard exitStatus() != nil else { return }
        released.withLock { done in
            guard !done else { return }
            var raw: Int32 = 0
            _ = waitpid(pid, &raw, 0)
            done = true
        }
        if gaveTerminal { _ = tcsetpgrp(0, getpgrp()) }
    }

    /// Waits (up to `span`) until the output is copied: a grandchild that kept the
    /// pipes open must not hold the guard.
    public func finishOutput(within span: TimeSpan) {
        _ = copying.wait(timeout: span.fromNow)
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
