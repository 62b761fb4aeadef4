/// A failure reported by libpq or by the server, flattened to one line.
///
/// The message comes from `PQerrorMessage` / `PQresultErrorMessage`, which never contain the
/// password, but may name host, port, user and database.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection could not be opened or was lost.
        case connection
        /// The server refused who we are: wrong password, no `pg_hba.conf` entry, unknown role.
        case authentication
        /// The server rejected a statement (see `sqlState`).
        case query
        /// No answer before the caller's deadline: the connection was dropped (and its statement,
        /// if any, cancelled on the server).
        case timeout
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

    /// True when the statement ran out of time: the client deadline passed, or the server
    /// cancelled it for `statement_timeout` or `lock_timeout` (the exporter protected the server
    /// as designed).
    public var isTimeout: Bool { kind == .timeout || sqlState == "57014" || sqlState == "55P03" }

    /// True when the connection is gone or unusable and must be opened anew.
    public var dropsConnection: Bool { kind == .connection || kind == .authentication || kind == .timeout }

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
