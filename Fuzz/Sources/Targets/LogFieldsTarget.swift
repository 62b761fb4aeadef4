import FoundationEssentials

@testable import PGLockExporter

/// Log lines with server text in a field (an application name, a statement): in logfmt and in
/// JSON the line stays one line with no control character, and reads back as the same fields.
enum LogFieldsTarget {
    static let target = FuzzTarget(name: "log-fields") { bytes in
        let value = bytes.text
        let fields = [("level", "info"), ("msg", "fuzz"), ("value", value)]

        let logfmt = StructuredLogHandler.logfmt(fields)
        FuzzCheck.require(!logfmt.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "control character in \(logfmt.debugDescription)")
        FuzzCheck.require(LogfmtReader.fields(logfmt) == fields.map { [$0.0, $0.1] }, "logfmt does not read back: \(logfmt.debugDescription)")

        let json = StructuredLogHandler.json(fields)
        FuzzCheck.require(!json.unicodeScalars.contains { $0.value < 0x20 }, "control character in \(json.debugDescription)")
        let decoded = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))
        FuzzCheck.require(decoded == Dictionary(uniqueKeysWithValues: fields), "JSON does not read back: \(json.debugDescription)")
    }
}

/// A logfmt reader as go-logfmt reads lines: `key=value` or `key="escaped value"`, separated by
/// spaces; the oracle for the writer.
enum LogfmtReader {
    static func fields(_ line: String) -> [[String]]? {
        var result: [[String]] = []
        var rest = Substring(line)
        while !rest.isEmpty {
            guard let equals = rest.firstIndex(of: "=") else { return nil }
            let key = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var closed = false
                while let ch = rest.first {
                    rest = rest.dropFirst()
                    if ch == "\"" { closed = true; break }
                    guard ch == "\\" else { value.append(ch); continue }
                    guard let escaped = rest.first else { return nil }
                    rest = rest.dropFirst()
                    switch escaped {
                    case "n": value.append("\n")
                    case "r": value.append("\r")
                    case "t": value.append("\t")
                    case "\"", "\\", "/": value.append(escaped)
                    case "u":
                        guard rest.count >= 4, let code = UInt32(rest.prefix(4), radix: 16), let scalar = Unicode.Scalar(code) else { return nil }
                        value.unicodeScalars.append(scalar)
                        rest = rest.dropFirst(4)
                    default: return nil
                    }
                }
                guard closed else { return nil }
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            result.append([key, value])
            if rest.first == " " { rest = rest.dropFirst() } else if !rest.isEmpty { return nil }
        }
        return result
    }
}
