/// The filters of `GET /api/v1/episodes` and of `pg_lock_exporter episodes`, parsed from a query
/// string as the client sent it (`since=1h&datname=shop&limit=10`).
///
/// Strict, because a filter that is silently ignored shows the wrong incidents: an unknown
/// parameter, one given twice, an empty or malformed value, or a query string over 4 KiB is an
/// error naming it. Values are form-encoded (`%XX`, `+` for a space) and must decode to UTF-8.
public struct EpisodeQuery: Equatable, Sendable {
    /// Where `since` points: a time, or a span before the request.
    public enum Since: Equatable, Sendable {
        case time(EpisodeRecord.Timestamp)
        case ago(TimeSpan)
    }

    /// Episodes going on at or after this (ongoing, or ended at or after it).
    public var since: Since?
    public var datname: String?
    public var target: String?
    /// Only ongoing (true) or only ended (false) episodes.
    public var ongoing: Bool?
    /// At most this many, newest first (1…`maximumLimit`).
    public var limit: Int

    public static let defaultLimit = 100
    public static let maximumLimit = 1000
    /// The longest query string accepted, in bytes.
    public static let maximumQueryBytes = 4096
    /// The parameters, in the order the error message lists them.
    public static let parameters = ["since", "datname", "target", "ongoing", "limit"]

    public init(since: Since? = nil, datname: String? = nil, target: String? = nil, ongoing: Bool? = nil, limit: Int = defaultLimit) {
        self.since = since
        self.datname = datname
        self.target = target
        self.ongoing = ongoing
        self.limit = limit
    }

    /// One line saying what is wrong with a query string; outside text in it is quoted through
    /// `TerminalText.excerpt`.
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// The filters of `rawQuery` (what follows `?`, without it; empty for none), form-decoded here:
    /// the fuzz target's entry point, and what the API parses once libmicrohttpd has decoded the
    /// arguments (`parse(arguments:)`).
    public static func parse(_ rawQuery: some StringProtocol) throws(Error) -> EpisodeQuery {
        guard rawQuery.utf8.count <= maximumQueryBytes else {
            throw Error(description: "the query string is longer than \(maximumQueryBytes) bytes")
        }
        var arguments: [HTTPRequest.QueryArgument] = []
        for pair in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = FormDecoding.decode(parts[0]) else {
                throw Error(description: "a parameter name is not valid form-encoded UTF-8")
            }
            var value: String?
            if parts.count == 2 {
                guard let decoded = FormDecoding.decode(parts[1]) else {
                    throw Error(description: "\(TerminalText.excerpt(name, limit: 40)): the value is not valid form-encoded UTF-8")
                }
                value = decoded
            }
            arguments.append(HTTPRequest.QueryArgument(name: name, value: value))
        }
        return try parse(arguments: arguments)
    }

    /// The filters of decoded arguments, in the order sent.
    public static func parse(arguments: [HTTPRequest.QueryArgument]) throws(Error) -> EpisodeQuery {
        guard arguments.reduce(0, { $0 + $1.name.utf8.count + ($1.value?.utf8.count ?? 0) + 2 }) <= maximumQueryBytes else {
            throw Error(description: "the query string is longer than \(maximumQueryBytes) bytes")
        }
        var query = EpisodeQuery()
        var seen = Set<String>()
        for argument in arguments {
            let name = argument.name
            guard parameters.contains(name) else {
                throw Error(
                    description: "unknown parameter \"\(TerminalText.excerpt(name, limit: 40))\"; known: \(parameters.joined(separator: ", "))")
            }
            guard seen.insert(name).inserted else { throw Error(description: "\(name): given more than once") }
            guard let value = argument.value, !value.isEmpty else { throw Error(description: "\(name): needs a value") }
            switch name {
            case "since": query.since = try parseSince(value)
            case "datname": query.datname = value
            case "target": query.target = value
            case "ongoing":
                switch value {
                case "true": query.ongoing = true
                case "false": query.ongoing = false
                default: throw Error(description: "ongoing: must be true or false, not \"\(TerminalText.excerpt(value, limit: 40))\"")
                }
            default:  // limit
                guard value.utf8.count <= 7, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let limit = Int(value),
                    (1...maximumLimit).contains(limit)
                else {
                    throw Error(description: "limit: must be a whole number from 1 to \(maximumLimit), not \"\(TerminalText.excerpt(value, limit: 40))\"")
                }
                query.limit = limit
            }
        }
        return query
    }

    /// `since` as an RFC 3339 time (`2026-12-05T03:00:00Z`) or a span before now (`1h`, `90m`).
    public static func parseSince(_ value: String) throws(Error) -> Since {
        if let first = value.first, first.isNumber, value.contains("T") || value.contains("t") {
            guard let time = EpisodeRecord.Timestamp(rfc3339: value) else {
                throw Error(description: "since: not an RFC 3339 time: \"\(TerminalText.excerpt(value, limit: 40))\"")
            }
            // No episode is older than 1970; years before it print and parse differently in
            // calendars (found by the fuzz target), so they are refused rather than guessed.
            guard time.microsecondsSinceEpoch >= 0, time.microsecondsSinceEpoch < 253_402_300_800_000_000 else {
                throw Error(description: "since: must be between 1970 and 9999, not \"\(TerminalText.excerpt(value, limit: 40))\"")
            }
            return .time(time)
        }
        do {
            // To the millisecond, so the query string `queryString` writes names it exactly.
            return .ago(TimeSpan(clampingMilliseconds: try DurationText.timeSpan(value).milliseconds))
        } catch {
            throw Error(
                description: "since: must be an RFC 3339 time (2026-12-05T03:00:00Z) or a duration ago (1h), not \"\(TerminalText.excerpt(value, limit: 40))\"")
        }
    }

    /// The earliest time `since` allows, for a request answered at `now`.
    public func sinceTimestamp(now: EpisodeRecord.Timestamp) -> EpisodeRecord.Timestamp? {
        switch since {
        case .time(let time)?: return time
        case .ago(let span)?:
            let micros = span.nanoseconds / 1000
            return EpisodeRecord.Timestamp(microsecondsSinceEpoch: now.microsecondsSinceEpoch &- min(micros, now.microsecondsSinceEpoch))
        case nil: return nil
        }
    }

    /// The query string that asks for these filters (what `pg_lock_exporter episodes --url` sends).
    public var queryString: String {
        var parts: [String] = []
        switch since {
        case .time(let time)?: parts.append("since=" + FormDecoding.encode(time.description))
        case .ago(let span)?: parts.append("since=\(span.milliseconds)ms")
        case nil: break
        }
        if let datname { parts.append("datname=" + FormDecoding.encode(datname)) }
        if let target { parts.append("target=" + FormDecoding.encode(target)) }
        if let ongoing { parts.append("ongoing=\(ongoing)") }
        parts.append("limit=\(limit)")
        return parts.joined(separator: "&")
    }
}

/// `application/x-www-form-urlencoded` as a query string carries it.
enum FormDecoding {
    /// `%XX` and `+` decoded; nil when an escape is malformed or the bytes are not UTF-8.
    static func decode(_ text: some StringProtocol) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Every byte but unreserved ASCII (RFC 3986) as `%XX`.
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count < 2 ? "0" + hex : hex)
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
