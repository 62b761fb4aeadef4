import FoundationEssentials

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends one JSON object per decision to a file (`--audit-log`). Each line is one `write(2)`
/// on a file opened with `O_APPEND`, so concurrent writers never interleave lines.
public struct AuditLog: Sendable {
    public let path: String

    public struct OpenError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Opens (creating if needed) to check the file is writable before anything is done.
    public init(path: String) throws(OpenError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw OpenError(description: "--audit-log \(path): \(String(cString: strerror(errno)))")
        }
        close(fd)
    }

    public func append(_ decisions: [Decision]) throws {
        guard !decisions.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw OpenError(description: "--audit-log \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        for decision in decisions {
            var line = try Self.encoder.encode(decision)
            line.append(UInt8(ascii: "\n"))
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written != line.count { throw OpenError(description: "--audit-log \(path): \(String(cString: strerror(errno)))") }
        }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
