#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The names in a directory (`/proc`, `/proc/PID/fd`), without `.` and `..`.
enum DirectoryEntries {
    /// nil when the directory cannot be opened.
    static func names(in path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            // `d_name` is read in place, up to its terminator: the record `readdir` returns is
            // only `d_reclen` bytes long, so loading the whole `dirent` (whose `d_name` is
            // declared 256 bytes) reads past the end of the last entry in the buffer (ASan).
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
}
