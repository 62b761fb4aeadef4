/// Durations as operators write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`, `2d`.
///
/// A parsed duration is at most `TimeSpan.maximum` (365 days): anything longer (however many
/// digits it has) is refused, so no flag can carry a number that traps where it is used.
public enum DurationText {
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public enum Reason: Sendable, Equatable {
            /// Not a number with a unit.
            case syntax
            /// Longer than `TimeSpan.maximum`.
            case tooLong
        }

        public let text: String
        public let reason: Reason

        public init(text: String, reason: Reason = .syntax) {
            self.text = text
            self.reason = reason
        }

        public var description: String {
            // The text is the operator's own flag value: cut, so the line stays short, and
            // terminal-safe, so a CR or an escape sequence in it cannot break the one-line error or
            // reach the terminal (found by the duration fuzz target).
            let shown = TerminalText.safe(text.count > 64 ? String(text.prefix(64)) + "…" : text)
            switch reason {
            case .syntax:
                return "invalid duration \"\(shown)\": use a number with a unit, e.g. 500ms, 30s, 5m, 1h"
            case .tooLong:
                return "invalid duration \"\(shown)\": longer than the maximum, 365d"
            }
        }
    }

    /// Parses to a `TimeSpan`; refuses text that is not a duration or is longer than 365 days.
    public static func timeSpan(_ text: String) throws(ParseError) -> TimeSpan {
        TimeSpan(clampingSeconds: try seconds(text))
    }

    /// Parses to seconds (at most 365 days' worth; longer is refused).
    public static func seconds(_ text: String) throws(ParseError) -> Double {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var rest = text.hasPrefix(" ") ? text.dropFirst() : Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { throw ParseError(text: text) }
        while !rest.isEmpty {
            // ASCII digits only: `isNumber` would also take "½" or "٣".
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let value = Double(number) else { throw ParseError(text: text) }
            rest = rest.dropFirst(number.count)
            guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) })
            else { throw ParseError(text: text) }
            rest = rest.dropFirst(unit.count)
            total += value * factor
            // Checked per part: a run of digits may already be +∞, and ∞ never comes back down.
            guard total <= TimeSpan.maximum.seconds else { throw ParseError(text: text, reason: .tooLong) }
        }
        return total
    }

    /// Formats seconds the same way (`1h5m`, `90s`, `250ms`), for messages. Any Double is
    /// accepted: it is clamped as `TimeSpan(clampingSeconds:)` first (NaN and negatives read
    /// `0ms`, more than a year reads as a year).
    public static func format(_ seconds: Double) -> String { format(TimeSpan(clampingSeconds: seconds)) }

    /// Formats a span (`1h5m`, `90s`, `250ms`).
    public static func format(_ span: TimeSpan) -> String {
        if span.nanoseconds < 1_000_000_000 { return "\((span.nanoseconds + 500_000) / 1_000_000)ms" }
        var rest = (span.nanoseconds + 500_000_000) / 1_000_000_000
        var out = ""
        if rest >= 3600 { out += "\(rest / 3600)h"; rest %= 3600 }
        if rest >= 60 { out += "\(rest / 60)m"; rest %= 60 }
        if rest > 0 || out.isEmpty { out += "\(rest)s" }
        return out
    }
}
