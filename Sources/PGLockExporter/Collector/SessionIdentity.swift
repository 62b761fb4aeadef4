/// What a row of a snapshot stands for. A pid alone names nothing safely: PostgreSQL reuses
/// pids, `pg_blocking_pids()` reports every prepared transaction as pid 0, and the snapshot gives
/// the rows standing for prepared transactions negative pids of their own. Code that acts on a
/// session switches on this instead of testing a pid's sign.
public enum SessionIdentity: Sendable, Hashable {
    /// A client backend whose start time we can see: the only kind that may be signalled.
    case clientBackend(ClientBackendIdentity)
    /// Any other process with a pid (autovacuum, startup, walsender, a background worker...):
    /// reported, never signalled by this tool.
    case backgroundProcess(pid: Int32, backendType: String)
    /// A prepared transaction: no process runs it; only a person's `COMMIT PREPARED` or
    /// `ROLLBACK PREPARED` ends it.
    case preparedTransaction(gid: String)
    /// `pg_blocking_pids()`' pid 0 where the prepared transaction could not be named (it ended
    /// between two reads).
    case unnamedPreparedTransaction
    /// A row whose kind or start we cannot see (the role lacks `pg_read_all_stats`), or a pid
    /// with no row at all (a backend that just ended).
    case unknown(pid: Int32)

    /// A prepared transaction, named or not.
    public var isPreparedTransaction: Bool {
        switch self {
        case .preparedTransaction, .unnamedPreparedTransaction: return true
        default: return false
        }
    }
}

/// A live client backend: its pid together with `backend_start` as the server printed it, so a
/// reused pid never matches. The only value that code building a statement which signals a
/// backend (`pg_terminate_backend`, `pg_cancel_backend`) accepts; such a statement re-checks
/// both, and `backend_type`, in the statement that sends the signal (`matchSQL`).
public struct ClientBackendIdentity: Sendable, Hashable, CustomStringConvertible {
    public let pid: Int32
    /// `pg_stat_activity.backend_start` as text, passed back as `$n::timestamptz`.
    public let backendStart: String

    /// nil unless this is a client backend with a real pid (> 0) and a visible start time:
    /// prepared transactions (pid ≤ 0, no start), hidden rows (no start, no type) and
    /// background processes never get one.
    public init?(pid: Int32, backendStart: String?, backendType: String?) {
        guard pid > 0, backendType == "client backend", let backendStart, !backendStart.isEmpty else { return nil }
        self.pid = pid
        self.backendStart = backendStart
    }

    /// The condition that a row `alias` of `pg_stat_activity` is still this backend, with the pid
    /// as parameter `$first` and the start as `$(first + 1)` (`parameters` in that order).
    public static func matchSQL(_ alias: String, first: Int) -> String {
        "\(alias).pid = $\(first)::int AND \(alias).backend_start = $\(first + 1)::timestamptz AND \(alias).backend_type = 'client backend'"
    }

    /// The parameters of `matchSQL`, in order.
    public var parameters: [String] { [String(pid), backendStart] }

    public var description: String { "pid \(pid) (started \(backendStart))" }
}

extension Session {
    /// What this row stands for; see `SessionIdentity`.
    public var identity: SessionIdentity {
        if let gid { return .preparedTransaction(gid: gid) }
        if pid == 0 { return .unnamedPreparedTransaction }
        if let backend = clientBackendIdentity { return .clientBackend(backend) }
        if let backendType, backendType != "client backend", pid > 0 { return .backgroundProcess(pid: pid, backendType: backendType) }
        return .unknown(pid: pid)
    }

    /// The identity a signalling statement needs, when this row is a client backend we can name.
    public var clientBackendIdentity: ClientBackendIdentity? {
        gid == nil ? ClientBackendIdentity(pid: pid, backendStart: backendStart, backendType: backendType) : nil
    }
}
