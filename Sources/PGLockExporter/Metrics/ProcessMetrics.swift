#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The standard `process_*` metrics of Prometheus client libraries, read from `/proc/self`.
public enum ProcessMetrics {
    public static func write(into w: inout ExpositionWriter) {
        #if os(Linux)
        guard let stat = readFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return }
        // Fields after the command name, which may itself contain spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        // fields[0] is field 3 (state); utime=14, stime=15, starttime=22, vsize=23, rss=24.
        func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
        w.family("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.")
        w.sample("process_cpu_seconds_total", (field(14) + field(15)) / ticks)
        w.family("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.")
        w.sample("process_resident_memory_bytes", field(24) * pageSize)
        w.family("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.")
        w.sample("process_virtual_memory_bytes", field(23))
        if let bootTime = Self.bootTime {
            w.family("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.")
            w.sample("process_start_time_seconds", bootTime + field(22) / ticks)
        }
        w.family("process_open_fds", .gauge, help: "Number of open file descriptors.")
        w.sample("process_open_fds", openFileDescriptors())
        var limit = rlimit()
        if getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 {
            w.family("process_max_fds", .gauge, help: "Maximum number of open file descriptors.")
            w.sample("process_max_fds", Double(limit.rlim_cur))
        }
        #endif
    }

    #if os(Linux)
    private static let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

    static func readFile(_ path: String) -> String? { try? TextFile.read(path) }

    /// The machine's boot time does not change: read once.
    private static let bootTime: Double? = bootTimeSeconds()

    private static func bootTimeSeconds() -> Double? {
        guard let stat = readFile("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).drop { $0 == " " })
        }
        return nil
    }

    private static func openFileDescriptors() -> Int {
        guard let names = DirectoryEntries.names(in: "/proc/self/fd") else { return 0 }
        return names.count - 1  // the descriptor opendir itself holds
    }
    #endif
}
