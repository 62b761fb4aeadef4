import Foundation

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Foundation's `Process` waits for its children through machinery that did not run while the
/// tests blocked the cooperative thread pool (a hang seen here), so the fixtures manage their
/// children directly. Output goes to a file, input (optionally) comes from a pipe.
final class ChildProcess: @unchecked Sendable {
    // Invariant: `pid` and `stdinFD` are set once in init; `status` is only touched under `lock`.
    let pid: pid_t
    let outputPath: String
    private var stdinFD: Int32
    private let lock = NSLock()
    private var status: Int32?

    init(_ arguments: [String], environment: [String: String]? = nil, stdinPipe: Bool = false) throws {
        outputPath = NSTemporaryDirectory() + "child-\(UUID().uuidString).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var fds: [Int32] = [-1, -1]
        if stdinPipe {
            guard pipe(&fds) == 0 else { throw TestFailure("pipe() failed") }
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
            posix_spawn_file_actions_addclose(&actions, fds[0])
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let result = posix_spawnp(&child, arguments[0], &actions, nil, &argv, &envp)
        if stdinPipe { close(fds[0]) }
        guard result == 0 else {
            if stdinPipe { close(fds[1]) }
            throw TestFailure("cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        }
        pid = child
        stdinFD = stdinPipe ? fds[1] : -1
    }

    /// Everything the child wrote to stdout and stderr so far.
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    func write(_ text: String) {
        guard stdinFD >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Foundation.write(stdinFD, $0.baseAddress, $0.count) }
    }

    func closeInput() {
        lock.lock()
        defer { lock.unlock() }
        if stdinFD >= 0 { close(stdinFD); stdinFD = -1 }
    }

    /// The exit status once the child has ended (reaping it), else nil.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            // WIFEXITED / WEXITSTATUS; a signal death is reported as 128 + signal, like a shell.
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        }
        return status
    }

    var isRunning: Bool { exitStatus == nil }

    func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// Waits for the child to end; nil on timeout.
    @discardableResult
    func wait(timeout: Double = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let status = exitStatus { return status }
            usleep(20_000)
        }
        return nil
    }

    deinit {
        closeInput()
        if isRunning {
            kill(pid, SIGKILL)
            wait(timeout: 5)
        }
        unlink(outputPath)
    }
}
