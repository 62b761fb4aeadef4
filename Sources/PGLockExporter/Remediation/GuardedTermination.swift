/// A termination as the policy justified it: which client backend, and the state that made it a
/// target. The only input of the statement that terminates (`sql`), which re-checks every part
/// of it in the statement that sends the signal: same pid and `backend_start` (a reused pid
/// differs), still a client backend, same `state` and `state_change` (a session that committed
/// or ran another statement differs), and not waiting on a lock. No row means the session moved
/// on, and nothing is signalled.
public struct GuardedTermination: Sendable, Hashable {
    public let backend: ClientBackendIdentity
    /// `pg_stat_activity.state` and `state_change` when the policy decided.
    public let state: String
    public let stateChange: String

    /// nil unless the session is a client backend we can name (`ClientBackendIdentity`) with a
    /// visible state: a prepared transaction, a background process or a hidden row never gets one.
    public init?(session: Session) {
        guard let backend = session.clientBackendIdentity, let state = session.state, let stateChange = session.stateChange else { return nil }
        self.backend = backend
        self.state = state
        self.stateChange = stateChange
    }

    /// `pg_terminate_backend` checks privileges itself: a `pg_signal_backend` role cannot end a
    /// superuser's session, and that error is reported.
    static let sql = """
        SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
        WHERE \(ClientBackendIdentity.matchSQL("a", first: 1)) AND a.state = $3
          AND a.state_change = $4::timestamptz AND a.wait_event_type IS DISTINCT FROM 'Lock'
        """

    /// The parameters of `sql`, in order.
    var parameters: [String] { backend.parameters + [state, stateChange] }
}
