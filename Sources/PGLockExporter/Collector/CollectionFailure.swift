/// Why a collection failed, as the bounded `reason` label of
/// `pg_lock_exporter_collection_failures_total`.
public enum CollectionFailure: String, CaseIterable, Sendable {
    /// No answer in time: the client deadline passed, or the server cancelled our statement.
    case timeout
    /// The connection could not be opened, or it was lost.
    case connect
    /// The server refused our credentials or role.
    case auth
    /// The server rejected a statement, or is a version the exporter does not support.
    case query

    public init(_ error: Error) {
        guard let error = error as? PostgresError else {
            self = .query
            return
        }
        if error.isTimeout {
            self = .timeout
            return
        }
        switch error.kind {
        case .timeout: self = .timeout
        case .authentication: self = .auth
        case .connection: self = .connect
        case .query: self = .query
        }
    }
}
