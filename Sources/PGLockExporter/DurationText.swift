/// Durations as operators write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`.
public enum DurationText {
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let text: String
        public var description: String {
            // Quoted terminal-safe and cut: the text comes from a flag or a file and is printed
            // as one line (found by the duration fuzz target: a CR in a flag broke the line).
            "invalid duration \"\(TerminalText.safe(String(text.prefix(64))))\": use a number with a unit, e.g. 500ms, 30s, 5m, 1h"
        }
    }

    /// Parses to seconds.
    public static func seconds(_ text: String) throws(ParseError) -> Double {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var rest = text.hasPrefix(" ") ? text.dropFirst() : Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { throw ParseError(text: text) }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { throw ParseError(text: text) }
            rest = rest.dropFirst(number.count)
            guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) })
            else { throw ParseError(text: text) }
            rest = rest.dropFirst(unit.count)
            total += value * factor
        }
        return total
    }

    /// Formats seconds the same way (`1h5m`, `90s`, `250ms`), for messages.
    public static func format(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        var rest = Int(seconds.rounded())
        var out = ""
        if rest >= 3600 { out += "\(rest / 3600)h"; rest %= 3600 }
        if rest >= 60 { out += "\(rest / 60)m"; rest %= 60 }
        if rest > 0 || out.isEmpty { out += "\(rest)s" }
        return out
    }
}
