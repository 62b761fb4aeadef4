/// Renders a `BlockingReport` for a person at a terminal: a header, each blocking tree drawn
/// root first, then the sessions idle in transaction that block nobody yet. Every text that came
/// from the server goes through `TerminalText.safe`: its control characters are shown, not sent.
public struct BlockingReportText {
    public let report: BlockingReport
    public let color: Bool

    public init(_ report: BlockingReport, color: Bool) {
        self.report = report
        self.color = color
    }

    private func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    private func bold(_ text: String) -> String { paint(text, "1") }
    private func red(_ text: String) -> String { paint(text, "31;1") }
    private func yellow(_ text: String) -> String { paint(text, "33") }
    private func dim(_ text: String) -> String { paint(text, "2") }

    public func render() -> String {
        var out = header() + "\n"
        if report.blockingTrees.isEmpty && report.server.blockedSessions == 0 {
            out += "\nNo session is blocked.\n"
        }
        for root in report.blockingTrees {
            let count = root.blockedCount ?? 0
            let name = root.gid.map { "prepared transaction \(safe(SQLLiteral.quote($0)))" } ?? "pid \(root.pid)"
            out += "\n" + bold("Blocking tree: \(name) blocks \(count) session\(count == 1 ? "" : "s") (chain depth \(root.chainDepth ?? 0))") + "\n"
            render(root, prefix: "", childPrefix: "", isRoot: true, into: &out)
        }
        for cycle in report.cycles {
            out += "\n" + bold("Sessions waiting on one another: pids \(cycle.map(String.init).joined(separator: ", "))") + "\n"
            out += "   " + yellow("a deadlock PostgreSQL has not broken yet: it ends one of them after deadlock_timeout") + "\n"
        }
        let idle = report.idleInTransactionNotBlocking
        if !idle.isEmpty {
            out += "\n" + bold("Idle in transaction, blocking nobody (yet):") + "\n"
            for s in idle {
                out += "  pid \(s.pid)  " + yellow("\(safe(s.state)) \(DurationText.format(s.stateSeconds ?? 0))") + "  "
                    + identity(
                        datname: s.datname, usename: s.usename, application: s.applicationName, client: s.clientAddr,
                        pooler: s.pgbouncerClient) + "\n"
                if let query = s.query { out += "      " + dim("query: \(oneLine(query))") + "\n" }
            }
        }
        return out
    }

    /// One tree alone, root first, drawn as `render()` draws each tree (for `migrate`).
    public func renderTree(_ root: BlockingReport.Node) -> String {
        var out = ""
        render(root, prefix: "", childPrefix: "", isRoot: true, into: &out)
        return out
    }

    private func header() -> String {
        let states = report.server.sessionsByState.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        let total = states.reduce(0) { $0 + $1.value }
        let list = states.map { "\($0.value) \(safe($0.key))" }.joined(separator: ", ")
        let blocked = report.server.blockedSessions
        // The version is left out where it was not read (migrate's preflight reads no settings).
        let server = report.server.version.isEmpty ? "" : bold("PostgreSQL \(safe(report.server.version))") + " · "
        return server + "\(total) client session\(total == 1 ? "" : "s")"
            + (list.isEmpty ? "" : ": \(list)") + " · " + (blocked > 0 ? red("\(blocked) blocked") : "0 blocked")
    }

    private func render(_ node: BlockingReport.Node, prefix: String, childPrefix: String, isRoot: Bool, into out: inout String) {
        let who = identity(
            datname: node.datname, usename: node.usename, application: node.applicationName, client: node.clientAddr,
            pooler: node.pgbouncerClient)
        var line = prefix + bold("pid \(node.pid)") + (node.gid.map { " (gid \(safe(SQLLiteral.quote($0))))" } ?? "") + "  "
        if isRoot {
            line += red("\(safe(node.state)) \(DurationText.format(node.stateSeconds ?? 0))")
        } else {
            let lock = node.lockMode.map { " for \(safe($0))" + (node.relation.map { " on \(safe($0))" } ?? "") } ?? ""
            line += yellow("waiting \(DurationText.format(node.waitSeconds ?? 0))\(lock)") + "  (\(safe(node.state)))"
        }
        if node.repeated {
            out += line + dim("  — also waits behind another session above") + "\n"
            return
        }
        out += line + "  " + who + "\n"
        let detailPrefix = childPrefix + (node.blocked.isEmpty ? "   " : "│  ")
        if isRoot, let mode = node.lockMode {
            out += detailPrefix + "holds \(safe(mode))" + (node.relation.map { " on \(safe($0))" } ?? "") + "\n"
        }
        if isRoot, let hint = node.hint {
            out += detailPrefix + yellow("not ended by this tool: \(safe(hint))") + "\n"
        }
        if let query = node.query, !query.isEmpty { out += detailPrefix + dim("query: \(oneLine(query))") + "\n" }
        if node.truncated == true {
            out += childPrefix + "└─ " + dim("… more sessions wait below: the tree is drawn \(BlockingReport.maxTreeDepth) levels deep") + "\n"
        }
        for (index, child) in node.blocked.enumerated() {
            let last = index == node.blocked.count - 1
            render(child, prefix: childPrefix + (last ? "└─ " : "├─ "), childPrefix: childPrefix + (last ? "   " : "│  "), isRoot: false, into: &out)
        }
    }

    private func identity(datname: String?, usename: String?, application: String?, client: String?, pooler: PoolerClient?) -> String {
        safe(BlockingReport.identity(datname: datname, usename: usename, application: application, client: client, pooler: pooler))
    }

    private func safe(_ text: String) -> String { TerminalText.safe(text) }

    private func oneLine(_ text: String) -> String { safe(PostgresError.oneLine(text)) }
}
