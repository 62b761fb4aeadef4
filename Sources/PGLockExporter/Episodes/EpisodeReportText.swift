/// `pg_lock_exporter episodes` in its text form: each episode written out the way a person writes
/// up an incident — the root cause (who, since when, which statement, from which client, holding
/// what), who waited and how long, how it ended, and the statement that would have prevented it
/// (`EpisodePrevention`).
///
/// Everything that came from the server or a client (names, statements, addresses) goes through
/// `TerminalText.safe`, as in `check`: a hostile `application_name` cannot move the cursor,
/// retitle the window or hide text.
public enum EpisodeReportText {
    public static func render(_ records: [EpisodeRecord]) -> String {
        guard !records.isEmpty else { return "No blocking episodes.\n" }
        return records.map(render).joined(separator: "\n")
    }

    public static func render(_ record: EpisodeRecord) -> String {
        var out = ""
        let root = record.root
        out += "Episode \(safe(record.id)) in database \(safe(record.datname)) (target \(safe(record.target)))\n"
        out += "  \(EpisodeWording.when(record))\n"
        out += "\nRoot cause: \(EpisodeWording.who(root)), \(EpisodeWording.rootState(root)).\n"
        if let query = root.query {
            out += "  Statement\(root.queryReduced == true ? " (reduced: the parser could not read it)" : ""): \(safe(query))\n"
        }
        if let lock = record.lock {
            out += "  It held what the first waiters queued for: \(EpisodeWording.lock(lock)).\n"
        }
        out += "\nWho waited: \(EpisodeWording.waiting(record)).\n"
        for waiter in record.waiters {
            out += "  \(EpisodeWording.waiter(waiter))"
            if let query = waiter.query { out += ": \(safe(query))" }
            out += "\n"
        }
        if record.blockedTotal > record.waiters.count {
            out += "  … and \(record.blockedTotal - record.waiters.count) more\n"
        }
        out += "\nHow it ended: \(EpisodeWording.ending(record)).\n"
        if let prevention = EpisodePrevention(record) {
            out += "\nPrevention: role \(safe(prevention.role)) had no idle_in_transaction_session_timeout in database "
            out += "\(safe(prevention.database)); this ends such a session after \(prevention.timeout) idle in a transaction:\n"
            out += "  \(safe(prevention.statement))\n"
        }
        return out
    }

    private static func safe(_ text: String) -> String { TerminalText.safe(text) }
}

/// The phrases the text and Markdown forms share, with outside text made terminal-safe.
enum EpisodeWording {
    /// Under a minute to a tenth of a second (`4.3s`), as people compare lock waits; longer
    /// as `DurationText` writes it (`2m30s`).
    static func span(_ seconds: Double) -> String {
        guard seconds < 59.95 else { return DurationText.format(seconds) }
        let tenths = Int((max(0, seconds) * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
    }

    static func when(_ record: EpisodeRecord) -> String {
        let lasted = span(record.durationSeconds)
        let samples = record.samples == 1 ? "1 sample" : "\(record.samples) samples"
        if record.ongoing {
            return "ongoing since \(time(record.startedAt)) (\(lasted) so far, \(samples))"
        }
        let end = record.endedAt.map(time) ?? "?"
        return "from \(time(record.startedAt)) to \(end) (\(lasted), \(samples))"
    }

    /// `pid 65365 (user app, application "worker", client 10.0.0.5:51234)`; behind PgBouncer
    /// `… client=10.1.4.7:51234 via pgbouncer 10.0.0.5:6432, client connected 15:02:11)`.
    static func who(_ root: EpisodeRecord.Root) -> String {
        if let gid = root.gid { return "prepared transaction \"\(TerminalText.safe(gid))\"" + (root.usename.map { " of user \(TerminalText.safe($0))" } ?? "") }
        var details: [String] = []
        if let user = root.usename { details.append("user \(TerminalText.safe(user))") }
        if let application = root.applicationName, !application.isEmpty { details.append("application \"\(TerminalText.safe(application))\"") }
        if let pooled = root.pgbouncerClient {
            // Behind PgBouncer, the backend's own client is the pooler: the application's is named.
            details.append(TerminalText.safe(pooled.phrase))
        } else if let client = root.clientAddr, !client.isEmpty {
            details.append("client \(TerminalText.safe(client))" + (root.clientPort.map { $0 > 0 ? ":\($0)" : "" } ?? ""))
        }
        if let type = root.backendType, type != "client backend" { details.append(TerminalText.safe(type)) }
        let pid = root.pid.map { "pid \($0)" } ?? "a session"
        return details.isEmpty ? pid : "\(pid) (\(details.joined(separator: ", ")))"
    }

    /// `idle in transaction since 15:13:39 (transaction open since 15:13:38)`.
    static func rootState(_ root: EpisodeRecord.Root) -> String {
        if root.gid != nil { return "prepared and not yet committed or rolled back" }
        var text = root.state.map { TerminalText.safe($0) } ?? "state unknown"
        if let since = root.stateChange { text += " since \(time(since))" }
        if let transaction = root.xactStart { text += " (transaction open since \(time(transaction)))" }
        return text
    }

    /// `AccessExclusiveLock on relation features`.
    static func lock(_ lock: EpisodeRecord.Lock) -> String {
        var text = TerminalText.safe(lock.mode.isEmpty ? "a lock" : lock.mode)
        if let relation = lock.relation { text += " on \(TerminalText.safe(lock.locktype)) \(TerminalText.safe(relation))" }
        else { text += " (\(TerminalText.safe(lock.locktype)))" }
        return text
    }

    /// `3 sessions at most at once, 3 in all, chains up to 2 deep; the longest waited 4.1s, 9.8s of waiting in all`.
    static func waiting(_ record: EpisodeRecord) -> String {
        let most = record.peakBlocked == 1 ? "1 session" : "\(record.peakBlocked) sessions"
        return "\(most) at most at once, \(record.blockedTotal) in all, chains up to \(record.maxDepth) deep; "
            + "the longest waited \(span(record.maxWaitSeconds)), \(span(record.waiterSeconds)) of waiting in all"
    }

    /// `pid 77970 (user app, "psql", migrate) wanted AccessExclusiveLock on features, waited 4.1s`.
    static func waiter(_ waiter: EpisodeRecord.Waiter) -> String {
        var details: [String] = []
        if let user = waiter.usename { details.append("user \(TerminalText.safe(user))") }
        if let application = waiter.applicationName, !application.isEmpty { details.append("\"\(TerminalText.safe(application))\"") }
        if waiter.isMigrate { details.append("the migration of pg_lock_exporter migrate") }
        var text = "pid \(waiter.pid)" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
        if let mode = waiter.mode { text += " wanted \(TerminalText.safe(mode))" + (waiter.relation.map { " on \(TerminalText.safe($0))" } ?? "") }
        else if let relation = waiter.relation { text += " queued on \(TerminalText.safe(relation))" }
        return text + ", waited \(span(waiter.waitedSeconds))"
    }

    static func ending(_ record: EpisodeRecord) -> String {
        guard let end = record.end, !record.ongoing else { return "not yet: the episode is ongoing" }
        let cause = record.endCause.map { " (\(TerminalText.safe($0)))" } ?? ""
        switch end {
        case .released: return "released — the root's transaction ended or it let the lock go" + cause
        case .waitersGone: return "waiters_gone — the root still held its transaction; the sessions behind it gave up" + cause
        case .rootEnded: return "root_ended — the root's backend is gone" + cause
        case .unobserved: return "unobserved — the exporter lost sight of the target or stopped before the end" + cause
        }
    }

    /// `2026-12-05 15:13:39.123 UTC`.
    static func time(_ time: EpisodeRecord.Timestamp) -> String {
        let text = time.description  // 2026-12-05T15:13:39.123456Z
        guard text.count == 27 else { return text }
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(12)) + " UTC"
    }
}
