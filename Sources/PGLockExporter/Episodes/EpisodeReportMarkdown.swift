/// `pg_lock_exporter episodes --format markdown`: a section per episode, to paste into an incident
/// document or a ticket. The same content as the text form (`EpisodeReportText`), with outside
/// text escaped so that a name or a statement cannot add headings, links, HTML or table cells:
/// prose through `escape`, statements in code spans (`code`), table cells through `cell`.
public enum EpisodeReportMarkdown {
    public static func render(_ records: [EpisodeRecord]) -> String {
        guard !records.isEmpty else { return "No blocking episodes.\n" }
        return records.map(render).joined(separator: "\n")
    }

    public static func render(_ record: EpisodeRecord) -> String {
        var out = "## Blocking episode \(code(record.id)) in \(escape(record.datname))\n\n"
        out += "- **Target:** \(escape(record.target))\n"
        out += "- **When:** \(escape(EpisodeWording.when(record)))\n"
        out += "- **Root cause:** \(escape(EpisodeWording.who(record.root))), \(escape(EpisodeWording.rootState(record.root)))\n"
        if let query = record.root.query { out += "- **Statement:** \(code(query))\(record.root.queryReduced == true ? " (reduced)" : "")\n" }
        if let fingerprint = record.root.queryFingerprint { out += "- **Fingerprint:** \(code(fingerprint))\n" }
        if let lock = record.lock { out += "- **Held what the first waiters queued for:** \(escape(EpisodeWording.lock(lock)))\n" }
        out += "- **Who waited:** \(escape(EpisodeWording.waiting(record)))\n"
        out += "- **How it ended:** \(escape(EpisodeWording.ending(record)))\n"
        if !record.waiters.isEmpty {
            out += "\n| pid | user | application | wanted | waited | statement |\n|---|---|---|---|---|---|\n"
            for waiter in record.waiters {
                let wanted = [waiter.mode, waiter.relation.map { "on " + $0 }].compactMap { $0 }.joined(separator: " ")
                let application = (waiter.applicationName ?? "") + (waiter.isMigrate ? " (migrate)" : "")
                out += "| \(waiter.pid) | \(escape(waiter.usename ?? "")) | \(escape(application)) | \(escape(wanted)) | "
                out += "\(EpisodeWording.span(waiter.waitedSeconds)) | \(waiter.query.map { cell(code($0)) } ?? "") |\n"
            }
            if record.blockedTotal > record.waiters.count { out += "\n… and \(record.blockedTotal - record.waiters.count) more.\n" }
        }
        if let prevention = EpisodePrevention(record) {
            out += "\n**Prevention:** role \(escape(prevention.role)) had no `idle_in_transaction_session_timeout` in database "
            out += "\(escape(prevention.database)):\n\n```sql\n\(TerminalText.safe(prevention.statement))\n```\n"
        }
        return out
    }

    /// Prose, never at the start of a line: the punctuation that means something there
    /// (emphasis, code, links, HTML, entities, table cells, strikethrough) backslash-escaped,
    /// control characters (newlines among them) shown as escapes.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in TerminalText.safe(text) {
            if "\\`*_[]<>|~&".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// A code span long enough to hold any run of backticks in `text` (CommonMark 6.1).
    static func code(_ text: String) -> String {
        let safe = TerminalText.safe(text)
        var longest = 0
        var run = 0
        for character in safe {
            run = character == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: longest + 1)
        let pad = safe.hasPrefix("`") || safe.hasSuffix("`") ? " " : ""
        return fence + pad + safe + pad + fence
    }

    /// A code span in a table cell: `|` escaped (GitHub's tables split on it even inside code
    /// spans; prose cells go through `escape`, which escapes it already).
    static func cell(_ text: String) -> String {
        text.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
    }
}
