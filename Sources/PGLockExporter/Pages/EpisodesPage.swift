/// `/episodes` and `/episodes/{id}`: the blocking episodes of `--episodes.path` for a person, the
/// same records the JSON API (`/api/v1/episodes`) serves and `pg_lock_exporter episodes` prints.
/// The list filters as the API does (`datname`, `since`, `target`, `ongoing`, `limit`, through a
/// GET form that needs no script); one episode's page is its root-cause write-up with the
/// prevention advice (`EpisodeReportText`), as text a person can copy into a ticket.
public enum EpisodesPage {
    /// The list for `query`, newest first.
    public static func list(_ records: [EpisodeRecord], query: EpisodeQuery) -> PageDocument {
        var body = "<h1>Blocking episodes</h1>\n"
        body += "<form method=\"get\" action=\"episodes\" role=\"search\">"
        body += field("datname", "Database", query.datname ?? "")
        body += field("target", "Target", query.target ?? "")
        body += field("since", "Since (1h, 2d, or an RFC 3339 time)", sinceText(query.since))
        body += "<button type=\"submit\">Show</button></form>\n"
        guard !records.isEmpty else {
            return PageDocument(title: "Blocking episodes", body: body + "<p>No blocking episodes match.</p>\n")
        }
        body += "<div class=\"table\"><table><thead><tr><th scope=\"col\">Started (UTC)</th><th scope=\"col\">Lasted</th>"
        body += "<th scope=\"col\">Database</th><th scope=\"col\">Root</th><th scope=\"col\">Blocked at most</th><th scope=\"col\">How it ended</th></tr></thead><tbody>\n"
        for record in records {
            body += "<tr class=\"episode\" data-id=\"\(HTMLText.escape(record.id))\">"
            body += "<td><a href=\"episodes/\(HTMLText.escape(record.id))\">\(HTMLText.escape(record.startedAt.description))</a></td>"
            body += "<td>\(DurationText.format(record.durationSeconds))\(record.ongoing ? " (ongoing)" : "")</td>"
            body += "<td>\(HTMLText.escape(record.datname))" + (record.target == EpisodeSettings.singleTarget ? "" : " <span class=\"muted\">(\(HTMLText.escape(record.target)))</span>") + "</td>"
            body += "<td>\(HTMLText.escape(EpisodeWording.who(record.root)))</td>"
            body += "<td>\(record.peakBlocked)</td>"
            body += "<td>\(record.end.map { HTMLText.escape($0.rawValue) } ?? "ongoing")</td></tr>\n"
        }
        body += "</tbody></table></div>\n"
        return PageDocument(title: "Blocking episodes", body: body)
    }

    /// One episode: its write-up.
    public static func one(_ record: EpisodeRecord) -> PageDocument {
        var body = "<h1>Blocking episode <code>\(HTMLText.escape(record.id))</code></h1>\n"
        body += "<p class=\"meta\">Root: \(HTMLText.escape(EpisodeWording.who(record.root)))"
        body += record.ongoing ? " · ongoing</p>\n" : " · ended: \(record.end.map { HTMLText.escape($0.rawValue) } ?? "?")</p>\n"
        body += "<pre class=\"write-up\">\(HTMLText.escape(EpisodeReportText.render(record)))</pre>\n"
        body += "<p><a href=\"../api/v1/episodes/\(HTMLText.escape(record.id))\">This record as JSON</a> · <a href=\"../episodes\">All episodes</a></p>\n"
        return PageDocument(title: "Episode \(record.id)", depth: 1, body: body)
    }

    private static func field(_ name: String, _ label: String, _ value: String) -> String {
        "<label>\(HTMLText.escape(label))<input name=\"\(name)\" value=\"\(HTMLText.escape(value))\"></label>"
    }

    private static func sinceText(_ since: EpisodeQuery.Since?) -> String {
        switch since {
        case .time(let timestamp): timestamp.description
        case .ago(let span): DurationText.format(span.seconds)
        case nil: ""
        }
    }
}
