/// A failure reported by libpq or by the server, flattened to one line.
///
/// The message comes from `PQerrorMessage` / `PQresultErrorMessage`, which never contain the
/// password, but may name host, port, user and database.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection could not be opened or was lost.
        case connection
        /// The server rejected a statement (see `sqlState`).
        case query
    }

    public let kind: Kind
    /// The five-character SQLSTATE, e.g. `57014` (query_canceled) or `42501` (insufficient_privilege).
    public let sqlState: String?
    public let message: String

    public init(kind: Kind, sqlState: String? = nil, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = PostgresError.oneLine(message)
    }

    public var description: String {
        if let sqlState { return "\(message) (SQLSTATE \(sqlState))" }
        return message
    }

    /// True when the server cancelled the statement because of `statement_timeout` or
    /// `lock_timeout`, i.e. the exporter protected the server as designed.
    public var isTimeout: Bool { sqlState == "57014" || sqlState == "55P03" }

    static func oneLine(_ text: String) -> String {
        var out = ""
        var pendingSpace = false
        for ch in text {
            if ch.isWhitespace {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(ch)
            }
        }
        return out
    }
}
