/// The statement that would have ended an episode's root before it blocked anyone for long: an
/// `idle_in_transaction_session_timeout` for the root's role in that database, written out for
/// the operator to review and run.
///
/// Given only when the root was idle in transaction and its role got no such timeout there (the
/// record's `guard` says 0, or does not say). The value is the largest of 10s, 30s, 1min, 2min
/// and 5min below how long the root sat idle (from `state_change` to the episode's end), so the
/// timeout would have ended this root; 10s when it was idle for less. Nothing longer: a
/// transaction that sits idle for minutes holds its locks and its snapshot for as long, and an
/// application that legitimately pauses that long inside a transaction should say so with a
/// longer setting of its own.
public struct EpisodePrevention: Equatable, Sendable {
    public let role: String
    public let database: String
    /// The suggested timeout, as PostgreSQL reads it (`'1min'`).
    public let timeout: String
    /// The statement, with both names quoted as `quote_ident` would.
    public let statement: String

    static let candidates: [(seconds: Double, text: String)] = [(10, "10s"), (30, "30s"), (60, "1min"), (120, "2min"), (300, "5min")]

    /// The advice for `record`, nil when its root had a timeout or was not idle in transaction.
    public init?(_ record: EpisodeRecord) {
        guard let role = record.root.usename, !role.isEmpty, record.root.gid == nil,
            Session.isIdleInTransaction(record.root.state)
        else { return nil }
        if let configured = record.guardTimeouts?.idleInTransactionSessionTimeout, configured > 0 { return nil }
        var idle: Double?
        if let since = record.root.stateChange {
            let end = record.endedAt ?? EpisodeRecord.Timestamp(
                microsecondsSinceEpoch: record.startedAt.microsecondsSinceEpoch + Int64(record.durationSeconds * 1_000_000))
            idle = Double(end.microsecondsSinceEpoch - since.microsecondsSinceEpoch) / 1_000_000
        }
        let chosen = Self.candidates.last { candidate in idle.map { candidate.seconds < $0 } ?? false } ?? Self.candidates[0]
        self.role = role
        self.database = record.datname
        self.timeout = chosen.text
        self.statement =
            "ALTER ROLE \(Self.quoteIdent(role)) IN DATABASE \(Self.quoteIdent(record.datname)) SET idle_in_transaction_session_timeout = '\(chosen.text)';"
    }

    /// `name` as PostgreSQL's `quote_ident` writes it: bare when it is a lower-case identifier
    /// that is no keyword the grammar reserves where a role or database name goes, else in double
    /// quotes with inner quotes doubled. The words that name a role specially (`current_user`,
    /// `public`, …) are always quoted: bare, they would name someone else.
    public static func quoteIdent(_ name: String) -> String {
        let bare =
            !name.isEmpty && !reservedWords.contains(name)
            && name.utf8.enumerated().allSatisfy { index, byte in
                (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || (index > 0 && byte >= 0x30 && byte <= 0x39)
            }
        return bare ? name : "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// PostgreSQL's reserved and type-or-function-name keywords (neither is a valid bare role or
    /// database name), and the role specifications that mean another role.
    static let reservedWords: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast", "check",
        "collate", "column", "constraint", "create", "current_catalog", "current_date", "current_role", "current_time",
        "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except",
        "false", "fetch", "for", "foreign", "from", "grant", "group", "having", "in", "initially", "intersect", "into",
        "lateral", "leading", "limit", "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order",
        "placing", "primary", "references", "returning", "select", "session_user", "some", "symmetric", "system_user",
        "table", "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "when", "where",
        "window", "with",
        "authorization", "binary", "collation", "concurrently", "cross", "current_schema", "freeze", "full", "ilike",
        "inner", "is", "isnull", "join", "left", "like", "natural", "notnull", "outer", "overlaps", "right", "similar",
        "tablesample", "verbose",
        "public", "none",
    ]
}
