/// Writes the Prometheus text exposition format (version 0.0.4) into a byte buffer.
///
/// Families are written in the order the caller gives and samples as given; callers sort their
/// label sets so the output is deterministic. Label values are user input (application names,
/// user names) and are escaped: backslash, double quote and newline.
public struct ExpositionWriter {
    public enum MetricType: String, Sendable {
        case gauge, counter, histogram, untyped
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 16 * 1024) { bytes.reserveCapacity(capacity) }

    /// The `# HELP` and `# TYPE` lines of a family.
    public mutating func family(_ name: String, _ type: MetricType, help: String) {
        append("# HELP ")
        append(name)
        bytes.append(UInt8(ascii: " "))
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\n"): append("\\n")
            default: bytes.append(byte)
            }
        }
        append("\n# TYPE ")
        append(name)
        bytes.append(UInt8(ascii: " "))
        append(type.rawValue)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// One sample line. Label names are the caller's constants; values are escaped.
    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Double) {
        append(name)
        if !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for (label, labelValue) in labels {
                if !first { bytes.append(UInt8(ascii: ",")) }
                first = false
                append(label)
                append("=\"")
                appendEscaped(labelValue)
                bytes.append(UInt8(ascii: "\""))
            }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        append(Self.format(value))
        bytes.append(UInt8(ascii: "\n"))
    }

    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Int) {
        sample(name, labels, Double(value))
    }

    public mutating func sample(_ name: String, _ value: Double) { sample(name, [:], value) }

    public mutating func sample(_ name: String, _ value: Int) { sample(name, [:], Double(value)) }

    /// Appends text that is already in exposition format (another writer's output).
    public mutating func append(contentsOf other: [UInt8]) { bytes.append(contentsOf: other) }

    /// Go's `strconv.ParseFloat` spellings: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }

    private mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    private mutating func appendEscaped(_ value: String) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\n"): append("\\n")
            default: bytes.append(byte)
            }
        }
    }
}
