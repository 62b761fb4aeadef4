#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The local ends of the connected TCP sockets held by the processes below the guard, read from
/// `/proc`: each process's `fd/` links name socket inodes (`socket:[INODE]`), and
/// `/proc/net/tcp{,6}` map inodes to their state and local address and port. From the server's
/// side the local end of a client's socket is `pg_stat_activity`'s `(client_addr, client_port)`:
/// matched as a pair, this proves a session is the migration's even when its driver ignores
/// `PGAPPNAME` (asyncpg, JDBC). Listening sockets and sockets not (yet) connected are no proof
/// and are left out: a port a child merely listens on may be any neighbour's source port.
///
/// The guard is the child's subreaper, so every process the migration started, orphaned or
/// not, stays below it. A process is known by its pid and start time (`/proc/PID/stat`): its
/// sockets count only when the start time read after them is the one read before, so a pid
/// reused meanwhile contributes nothing. Nothing about processes is remembered between looks.
///
/// Linux only; elsewhere, and for processes we may not inspect, the set is empty.
public struct ProcessTreePorts {
    /// A socket's local end as the server sees it: `client_addr` (as text `inet` reads) and
    /// `client_port`.
    public struct Endpoint: Hashable, Sendable {
        public var address: String
        public var port: Int
        public init(address: String, port: Int) {
            self.address = address
            self.port = port
        }
    }

    /// One row of `/proc/net/tcp{,6}`.
    public struct Socket: Equatable, Sendable {
        /// The local end; an IPv4-mapped IPv6 address gives both forms (the server reports
        /// whichever its listening socket's family makes it).
        public var local: [Endpoint]
        /// The kernel's TCP state: 1 is ESTABLISHED, 10 (0A) LISTEN.
        public var state: UInt8
        public var isConnected: Bool { state == 1 }
    }

    /// `/proc/PID/stat`'s fields the walk uses.
    public struct ProcessStat: Equatable, Sendable {
        public var pid: pid_t
        public var parent: pid_t
        /// Clock ticks after boot: with the pid, the process's identity.
        public var startTime: UInt64
    }

    /// Sockets whose rows were read: connected ones keep their local end for good, listening
    /// ones never connect. Others (connecting, closing) are looked up again.
    private var known: [UInt64: Socket] = [:]

    public init() {}

    /// The local ends of the connected TCP sockets of every process below `ancestor` (not its
    /// own: the guard's connection is not the migration's).
    public mutating func clientEndpoints(below ancestor: pid_t) -> Set<Endpoint> {
        var inodes = Set<UInt64>()
        for pid in Self.descendants(of: ancestor) {
            guard let before = Self.stat(of: pid) else { continue }
            let sockets = Self.socketInodes(of: pid)
            guard let after = Self.stat(of: pid), after.startTime == before.startTime else { continue }
            inodes.formUnion(sockets)
        }
        known = known.filter { inodes.contains($0.key) }
        let settled = { (s: Socket) in s.isConnected || s.state == 0x0A }
        if inodes.contains(where: { known[$0].map(settled) != true }) {
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                guard let text = try? TextFile.read(table, limit: 64 << 20) else { continue }
                for (inode, socket) in Self.sockets(procNetTCP: text) where inodes.contains(inode) { known[inode] = socket }
            }
        }
        return Set(known.values.filter(\.isConnected).flatMap(\.local))
    }

    /// `/proc/net/tcp` (or tcp6) text → socket inode → state and local end. Rows look like
    /// `0: 0100007F:D431 0100007F:1538 01 … 1000 0 123456 1 …`: the second field is the local
    /// address (32-bit words in host byte order) and port in hexadecimal, the fourth the state,
    /// the tenth the inode (0 for sockets in TIME_WAIT). Rows that do not parse are skipped.
    /// Pure: a fuzz target's entry point.
    public static func sockets(procNetTCP text: String) -> [UInt64: Socket] {
        var out: [UInt64: Socket] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let colon = fields[1].lastIndex(of: ":"),
                let address = address(hex: fields[1][..<colon]),
                let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16), (0...65535).contains(port),
                let state = UInt8(fields[3], radix: 16),
                let inode = UInt64(fields[9]), inode != 0
            else { continue }
            out[inode] = Socket(local: address.map { Endpoint(address: $0, port: port) }, state: state)
        }
        return out
    }

    /// The fields of `/proc/PID/stat`'s text: `PID (COMM) STATE PPID … STARTTIME …` (start time
    /// the 22nd field). The command name may hold spaces and parentheses, so the fields are read
    /// after its last `)`. Pure: a fuzz target's entry point.
    public static func processStat(_ text: String) -> ProcessStat? {
        // Bytes, not characters: a command name that starts with a combining mark would make
        // "(" and the mark one character, and the "(" would not be found (found by the
        // proc-net-tcp fuzz target).
        let bytes = Array(text.utf8)
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close,
            let pid = pid_t(String(decoding: bytes[..<open], as: UTF8.self).trimmingPrefix(" ").prefix { $0 != " " })
        else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count >= 20, let parent = pid_t(fields[1]), let start = UInt64(fields[19]) else { return nil }
        return ProcessStat(pid: pid, parent: parent, startTime: start)
    }

    /// An address column as text: IPv4 `a.b.c.d` from 8 hex digits, IPv6 as eight groups from
    /// 32; an IPv4-mapped IPv6 address also as IPv4. The kernel prints each 32-bit word as it
    /// lies in memory, read as a host-order integer.
    static func address<S: StringProtocol>(hex: S) -> [String]? {
        guard hex.count == 8 || hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        var bytes: [UInt8] = []
        var rest = Substring(hex)
        while !rest.isEmpty {
            guard let word = UInt32(rest.prefix(8), radix: 16) else { return nil }
            withUnsafeBytes(of: word) { bytes.append(contentsOf: $0) }
            rest = rest.dropFirst(8)
        }
        let v4 = { (b: ArraySlice<UInt8>) in b.map(String.init).joined(separator: ".") }
        if bytes.count == 4 { return [v4(bytes[...])] }
        let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        let v6 = groups.joined(separator: ":")
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return [v6, v4(bytes[12...])] }
        return [v6]
    }

    /// Every process below `ancestor`, found through the kernel's per-thread `children` lists
    /// (a child listed under a pid counts only when its own `stat` names that parent), or by
    /// reading every process's `stat` where the kernel has no such lists.
    static func descendants(of ancestor: pid_t) -> [pid_t] {
        let byChildrenFiles = access("/proc/\(ancestor)/task/\(ancestor)/children", R_OK) == 0
        let parents = byChildrenFiles ? [:] : allParents()
        var out: [pid_t] = []
        var seen: Set<pid_t> = [ancestor]
        var stack = children(of: ancestor, byChildrenFiles: byChildrenFiles, parents: parents)
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            out.append(next)
            stack.append(contentsOf: children(of: next, byChildrenFiles: byChildrenFiles, parents: parents))
        }
        return out
    }

    /// The live and ended-but-unreaped children of `pid`.
    static func children(of pid: pid_t) -> [pid_t] {
        let byChildrenFiles = access("/proc/\(pid)/task/\(pid)/children", R_OK) == 0
        return children(of: pid, byChildrenFiles: byChildrenFiles, parents: byChildrenFiles ? [:] : allParents())
    }

    private static func children(of pid: pid_t, byChildrenFiles: Bool, parents: [pid_t: pid_t]) -> [pid_t] {
        guard byChildrenFiles else { return parents.filter { $0.value == pid }.map(\.key) }
        var out: [pid_t] = []
        for task in DirectoryEntries.names(in: "/proc/\(pid)/task") ?? [] {
            guard let text = try? TextFile.read("/proc/\(pid)/task/\(task)/children", limit: 1 << 20) else { continue }
            out += text.split(separator: " ").compactMap { pid_t($0.trimmingPrefix(" ")) }
        }
        return out.filter { stat(of: $0)?.parent == pid }
    }

    private static func allParents() -> [pid_t: pid_t] {
        var out: [pid_t: pid_t] = [:]
        for name in DirectoryEntries.names(in: "/proc") ?? [] {
            guard let pid = pid_t(name), let s = stat(of: pid) else { continue }
            out[pid] = s.parent
        }
        return out
    }

    static func stat(of pid: pid_t) -> ProcessStat? {
        (try? TextFile.read("/proc/\(pid)/stat", limit: 4096)).flatMap(processStat)
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
