import FoundationEssentials

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension EpisodeRecord {
    /// A point in time to the microsecond (PostgreSQL's own precision for `timestamptz`), as whole
    /// microseconds since the Unix epoch: exact to compare, to store as an SQLite integer and to
    /// derive an episode's `id` from, whatever text format it came from.
    ///
    /// JSON carries it as RFC 3339 in UTC with six fractional digits
    /// (`2026-12-04T15:13:39.123456Z`); decoding accepts any RFC 3339 time (an offset, fewer or no
    /// fractional digits) and rounds it to the microsecond.
    public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
        public let microsecondsSinceEpoch: Int64

        public init(microsecondsSinceEpoch: Int64) {
            self.microsecondsSinceEpoch = microsecondsSinceEpoch
        }

        /// Seconds since the Unix epoch, rounded to the microsecond; nil when that is not a
        /// number or beyond ±292,000 years (what 64 bits of microseconds hold).
        public init?(secondsSinceEpoch: Double) {
            guard let micros = Int64(exactly: (secondsSinceEpoch * 1_000_000).rounded()) else { return nil }
            microsecondsSinceEpoch = micros
        }

        /// The RFC 3339 time `text` names; nil when it is not one.
        public init?(rfc3339 text: String) {
            guard let date = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
                    ?? (try? Date.ISO8601FormatStyle().parse(text))
            else { return nil }
            self.init(secondsSinceEpoch: date.timeIntervalSince1970)
        }

        public var secondsSinceEpoch: Double { Double(microsecondsSinceEpoch) / 1_000_000 }

        public static func < (lhs: Self, rhs: Self) -> Bool {
            lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
        }

        /// `2026-12-04T15:13:39.123456Z`. Foundation's ISO 8601 style writes milliseconds at most,
        /// so the text is put together from `gmtime_r` (as the log handler does).
        public var description: String {
            let (seconds, micros) = microsecondsSinceEpoch.quotientAndRemainder(dividingBy: 1_000_000)
            // Floor division, so times before 1970 keep a non-negative fraction.
            var wholeSeconds = time_t(micros < 0 ? seconds - 1 : seconds)
            let fraction = micros < 0 ? micros + 1_000_000 : micros
            var parts = tm()
            gmtime_r(&wholeSeconds, &parts)
            func pad(_ value: some BinaryInteger, _ width: Int) -> String {
                let text = String(value)
                return String(repeating: "0", count: max(0, width - text.count)) + text
            }
            return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
                + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(fraction, 6))Z"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let parsed = Timestamp(rfc3339: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an RFC 3339 time: \(TerminalText.excerpt(text))")
            }
            self = parsed
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(description)
        }

        /// The current time, from `CLOCK_REALTIME`.
        public static func now() -> Timestamp {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Timestamp(microsecondsSinceEpoch: Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec / 1000))
        }
    }
}
