/// `/tree`: the blocking trees of one target now, root first, drawn as `check` draws them
/// (`BlockingReport`): each session's state and age, the lock, the relation, how long each
/// waiter has waited, the client (the application's behind PgBouncer, where a configured pooler
/// names it) and its statement; then the sessions idle in transaction that block nobody yet.
/// It says when the data was read and from which server, and reloads itself every
/// `refreshSeconds` (`?refresh=0`: not).
///
/// The DOM is stable for tests and tools: a tree is `<section class="tree" id="root-PID">`, each
/// session an `<li class="session" data-pid="PID">` with a `.state`, and its waiters in a nested
/// `<ul class="waiters">`; statements are `<code class="query">`.
public struct TreePage {
    public var report: BlockingReport
    /// The target's name in multi-target mode; nil for the single target.
    public var target: String?
    /// The server as the page names it: the redacted DSN.
    public var server: String
    /// When the data was read (the collection's time, wall clock).
    public var readAt: EpisodeRecord.Timestamp
    public var refreshSeconds: Int?

    public static let defaultRefreshSeconds = 5

    public init(report: BlockingReport, target: String?, server: String, readAt: EpisodeRecord.Timestamp, refreshSeconds: Int?) {
        self.report = report
        self.target = target
        self.server = server
        self.readAt = readAt
        self.refreshSeconds = refreshSeconds
    }

    public var document: PageDocument {
        var body = "<h1>Blocking trees" + (target.map { " · \(HTMLText.escape($0))" } ?? "") + "</h1>\n"
        let version = report.server.version.isEmpty ? "PostgreSQL" : "PostgreSQL \(HTMLText.escape(report.server.version))"
        body += "<p class=\"meta\">Read at <time datetime=\"\(readAt.description)\">\(HTMLText.escape(readAt.description))</time> from \(version)"
        body += " (<code>\(HTMLText.escape(server))</code>). "
        let here = "tree" + (target.map { "?target=\(HTMLText.queryValue($0))" } ?? "")
        let separator = target == nil ? "?" : "&amp;"
        if let refreshSeconds {
            body += "Reloads every \(refreshSeconds) s (<a href=\"\(here)\(separator)refresh=0\">stop reloading</a>, to copy text).</p>\n"
        } else {
            body += "Not reloading (<a href=\"\(here)\">reload every \(Self.defaultRefreshSeconds) s</a>).</p>\n"
        }
        body += "<p class=\"summary\">" + summary() + "</p>\n"
        if report.blockingTrees.isEmpty && report.server.blockedSessions == 0 {
            body += "<p>No session is blocked.</p>\n"
        }
        for root in report.blockingTrees {
            let count = root.blockedCount ?? 0
            let name = root.gid.map { "prepared transaction <code>\(HTMLText.escape(SQLLiteral.quote($0)))</code>" } ?? "pid \(root.pid)"
            body += "<section class=\"tree\" id=\"root-\(root.pid)\">\n<h2>\(name) blocks \(count) session\(count == 1 ? "" : "s")"
            body += " (chain depth \(root.chainDepth ?? 0))</h2>\n<ul class=\"waiters top\">"
            render(root, isRoot: true, into: &body)
            body += "</ul>\n</section>\n"
        }
        for cycle in report.cycles {
            body += "<section class=\"cycle\"><h2>Sessions waiting on one another: pids \(cycle.map(String.init).joined(separator: ", "))</h2>"
            body += "<p>A deadlock PostgreSQL has not broken yet: it ends one of them after <code>deadlock_timeout</code>.</p></section>\n"
        }
        let idle = report.idleInTransactionNotBlocking
        if !idle.isEmpty {
            body += "<section class=\"idle\"><h2>Idle in transaction, blocking nobody (yet)</h2>\n<ul class=\"waiters top\">"
            for s in idle {
                body += "<li class=\"session\" data-pid=\"\(s.pid)\"><div class=\"line\"><span class=\"pid\">pid \(s.pid)</span>"
                body += "<span class=\"state idle-in-transaction\">\(HTMLText.escape(s.state)) \(DurationText.format(s.stateSeconds ?? 0))</span>"
                body += "<span class=\"who\">" + Self.who(datname: s.datname, usename: s.usename, application: s.applicationName, client: s.clientAddr, pooler: s.pgbouncerClient) + "</span></div>"
                if let query = s.query, !query.isEmpty { body += "<code class=\"query\">\(HTMLText.escape(query))</code>" }
                body += "</li>"
            }
            body += "</ul></section>\n"
        }
        return PageDocument(title: "Blocking trees" + (target.map { " · \($0)" } ?? ""), refreshSeconds: refreshSeconds, body: body)
    }

    private func summary() -> String {
        let states = report.server.sessionsByState.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        let total = states.reduce(0) { $0 + $1.value }
        let list = states.map { "\($0.value) \(HTMLText.escape($0.key))" }.joined(separator: ", ")
        return "\(total) client session\(total == 1 ? "" : "s")" + (list.isEmpty ? "" : ": \(list)") + " · \(report.server.blockedSessions) blocked"
    }

    private func render(_ node: BlockingReport.Node, isRoot: Bool, into out: inout String) {
        out += "<li class=\"session\(isRoot ? " root" : "")\" data-pid=\"\(node.pid)\"><div class=\"line\"><span class=\"pid\">pid \(node.pid)</span>"
        if let gid = node.gid { out += "<span>gid <code>\(HTMLText.escape(SQLLiteral.quote(gid)))</code></span>" }
        if isRoot {
            let idle = Session.isIdleInTransaction(node.state)
            out += "<span class=\"state\(idle ? " idle-in-transaction" : "")\">\(HTMLText.escape(node.state)) \(DurationText.format(node.stateSeconds ?? 0))</span>"
        } else {
            let lock = node.lockMode.map { " for \(HTMLText.escape($0))" + (node.relation.map { " on \(HTMLText.escape($0))" } ?? "") } ?? ""
            out += "<span class=\"state waiting\">waiting \(DurationText.format(node.waitSeconds ?? 0))\(lock)</span>"
            out += "<span class=\"muted\">(\(HTMLText.escape(node.state)))</span>"
        }
        if node.repeated {
            out += "<span class=\"muted\">also waits behind another session above</span></div></li>"
            return
        }
        out += "<span class=\"who\">" + Self.who(
            datname: node.datname, usename: node.usename, application: node.applicationName, client: node.clientAddr, pooler: node.pgbouncerClient)
            + "</span></div>"
        if isRoot, let mode = node.lockMode {
            out += "<div class=\"lock\">holds \(HTMLText.escape(mode))" + (node.relation.map { " on \(HTMLText.escape($0))" } ?? "") + "</div>"
        }
        if isRoot, let hint = node.hint { out += "<div class=\"lock\">not ended by this tool: \(HTMLText.escape(hint))</div>" }
        if let query = node.query, !query.isEmpty { out += "<code class=\"query\">\(HTMLText.escape(query))</code>" }
        if !node.blocked.isEmpty || node.truncated == true {
            out += "<ul class=\"waiters\">"
            for child in node.blocked { render(child, isRoot: false, into: &out) }
            if node.truncated == true {
                out += "<li class=\"muted\">… more sessions wait below: the tree is drawn \(BlockingReport.maxTreeDepth) levels deep</li>"
            }
            out += "</ul>"
        }
        out += "</li>"
    }

    /// `BlockingReport.identity`, escaped for the page.
    static func who(datname: String?, usename: String?, application: String?, client: String?, pooler: PoolerClient?) -> String {
        HTMLText.escape(BlockingReport.identity(datname: datname, usename: usename, application: application, client: client, pooler: pooler))
    }
}
