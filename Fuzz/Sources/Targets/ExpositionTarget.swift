import PGLockExporter

/// The exposition writer with server text as label values and help (a database, role or
/// application name can hold any bytes): every sample stays one line, and unescaping a label
/// value as Prometheus does gives the text back.
enum ExpositionTarget {
    static let target = FuzzTarget(name: "exposition") { bytes in
        let text = bytes.text
        var writer = ExpositionWriter()
        writer.family("pg_fuzz", .gauge, help: text)
        writer.sample("pg_fuzz", ["datname": text, "usename": "x"], 1)
        let lines = writer.bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        FuzzCheck.require(lines.count == 4 && lines[3].isEmpty, "\(lines.count - 1) lines for one family")
        let sample = Array(lines[2])
        let prefix = Array("pg_fuzz{datname=\"".utf8), suffix = Array("\",usename=\"x\"} 1".utf8)
        FuzzCheck.require(
            sample.starts(with: prefix) && sample.reversed().starts(with: suffix.reversed()), "sample line \(sample.text.debugDescription)")
        let escaped = sample[prefix.count..<(sample.count - suffix.count)]
        FuzzCheck.require(unescape(Array(escaped)) == Array(text.utf8), "label value does not round-trip: \(text.debugDescription)")
    }

    /// The exposition format's label-value unescaping (`\\`, `\"`, `\n`); an unescaped quote
    /// would end the value early, so it fails the round trip.
    static func unescape(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { return nil }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { return nil }
                switch bytes[index + 1] {
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "n"): out.append(UInt8(ascii: "\n"))
                default: return nil
                }
                index += 2
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }
}
