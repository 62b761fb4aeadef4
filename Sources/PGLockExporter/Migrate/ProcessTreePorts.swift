#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The local TCP ports held by a process and all its descendants, read from `/proc`: each
/// process's `fd/` links name socket inodes (`socket:[INODE]`), and `/proc/net/tcp{,6}` map
/// inodes to local addresses. Matched against `pg_stat_activity.client_port`, this finds the
/// migration's sessions even when its driver ignores `PGAPPNAME` (asyncpg, JDBC).
///
/// Linux only; elsewhere, and for processes we may not inspect, the set is empty.
///
/// The guard looks every 200ms, so the parent of each process is read once and remembered: a
/// look reads `/proc/PID/stat` only for processes that are new since the last one (a process
/// that outlives its parent keeps counting as the migration's, which it usually is), and the
/// TCP tables only when the tree holds a socket it has not seen.
public struct ProcessTreePorts {
    private var parents: [pid_t: pid_t] = [:]
    private var portByInode: [UInt64: Int] = [:]

    public init() {}

    /// Local ports of the TCP sockets that `root` and its descendants hold open.
    public mutating func clientPorts(of root: pid_t) -> Set<Int> {
        refreshParents()
        var inodes = Set<UInt64>()
        for pid in Self.descendants(of: root, parents: parents) {
            inodes.formUnion(Self.socketInodes(of: pid))
        }
        // A connected socket keeps its local port: the tables are read only for sockets not
        // seen before (reading them is the dear part of a look).
        portByInode = portByInode.filter { inodes.contains($0.key) }
        if !inodes.isSubset(of: portByInode.keys) {
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                guard let text = try? TextFile.read(table, limit: 64 << 20) else { continue }
                for (inode, port) in Self.localPorts(procNetTCP: text) where inodes.contains(inode) { portByInode[inode] = port }
            }
        }
        return Set(portByInode.values)
    }

    /// `/proc/net/tcp` (or tcp6) text → socket inode → local port. Rows look like
    /// `0: 0100007F:D431 0100007F:1538 01 … 1000 0 123456 1 …`: the second field is the local
    /// address with the port in hexadecimal, the tenth the inode (0 for sockets in TIME_WAIT).
    public static func localPorts(procNetTCP text: String) -> [UInt64: Int] {
        var out: [UInt64: Int] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let colon = fields[1].lastIndex(of: ":"),
                let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16),
                let inode = UInt64(fields[9]), inode != 0
            else { continue }
            out[inode] = port
        }
        return out
    }

    /// The parent pid from the text of `/proc/PID/stat`: `PID (COMM) STATE PPID …`. The command
    /// name may hold spaces and parentheses, so the fields are read after its last `)`.
    public static func parentPID(procStat text: String) -> pid_t? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2 else { return nil }
        return pid_t(fields[1])
    }

    /// `root` and every process below it.
    static func descendants(of root: pid_t, parents: [pid_t: pid_t]) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for (pid, parent) in parents { children[parent, default: []].append(pid) }
        var out: [pid_t] = []
        var seen: Set<pid_t> = []
        var stack = [root]
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            out.append(next)
            stack.append(contentsOf: children[next] ?? [])
        }
        return out
    }

    /// pid → parent pid for every process in `/proc`; only new pids are read.
    private mutating func refreshParents() {
        var now: [pid_t: pid_t] = [:]
        for name in DirectoryEntries.names(in: "/proc") ?? [] {
            guard let pid = pid_t(name) else { continue }
            if let known = parents[pid] {
                now[pid] = known
            } else if let stat = try? TextFile.read("/proc/\(name)/stat", limit: 4096), let parent = Self.parentPID(procStat: stat) {
                now[pid] = parent
            }
        }
        parents = now
    }

    private static func socketInodes(of pid: pid_t) -> Set<UInt64> {
        var out = Set<UInt64>()
        let directory = "/proc/\(pid)/fd"
        var buffer = [CChar](repeating: 0, count: 64)
        for name in DirectoryEntries.names(in: directory) ?? [] {
            let length = readlink("\(directory)/\(name)", &buffer, buffer.count - 1)
            guard length > 0 else { continue }
            let target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:["), target.hasSuffix("]"),
                let inode = UInt64(target.dropFirst("socket:[".count).dropLast())
            else { continue }
            out.insert(inode)
        }
        return out
    }
}
