#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads small text files (secrets, /proc entries) without Foundation.
public enum TextFile {
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }

        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
    }

    /// The whole file as UTF-8 text; refuses files over `limit` bytes.
    public static func read(_ path: String, limit: Int = 1 << 20) throws(ReadError) -> String {
        guard let file = fopen(path, "r") else { throw ReadError(path: path, reason: String(cString: strerror(errno))) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
            if bytes.count > limit { throw ReadError(path: path, reason: "larger than \(limit) bytes") }
        }
        if ferror(file) != 0 { throw ReadError(path: path, reason: String(cString: strerror(errno))) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A secret kept in a file: its content without the trailing newline; empty is an error.
    public static func secret(_ path: String) throws(ReadError) -> String {
        var text = try read(path, limit: 64 * 1024)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        guard !text.isEmpty else { throw ReadError(path: path, reason: "the file is empty") }
        return text
    }
}
