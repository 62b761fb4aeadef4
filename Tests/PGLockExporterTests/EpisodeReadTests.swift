import Foundation
import Testing

@testable import PGLockExporter

/// The read side of episodes, pure: the API's query parser, its answers' decoder, the text and
/// Markdown reports and the prevention advice.
@Suite struct EpisodeReadTests {
    typealias F = EpisodeStoreFixtures

    // MARK: EpisodeQuery

    @Test func queryParsesEveryFilter() throws {
        let query = try EpisodeQuery.parse("since=2026-12-05T03%3A00%3A00Z&datname=shop+db&target=eu%2F1&ongoing=false&limit=7")
        #expect(query.since == .time(EpisodeRecord.Timestamp(rfc3339: "2026-12-05T03:00:00Z")!))
        #expect(query.datname == "shop db")
        #expect(query.target == "eu/1")
        #expect(query.ongoing == false)
        #expect(query.limit == 7)
        #expect(try EpisodeQuery.parse("") == EpisodeQuery())
        #expect(try EpisodeQuery.parse("").limit == 100)
        #expect(try EpisodeQuery.parse("since=90m").since == .ago(.seconds(5400)))
        let now = F.at(0)
        #expect(try EpisodeQuery.parse("since=1h").sinceTimestamp(now: now) == F.at(-3600))
        #expect(try EpisodeQuery.parse("ongoing=true").ongoing == true)
    }

    @Test(arguments: [
        ("bogus=1", "unknown parameter \"bogus\"; known: since, datname, target, ongoing, limit"),
        ("limit=5&limit=6", "limit: given more than once"),
        ("datname=", "datname: needs a value"),
        ("datname", "datname: needs a value"),
        ("limit=0", "limit: must be a whole number from 1 to 1000, not \"0\""),
        ("limit=1001", "limit: must be a whole number from 1 to 1000, not \"1001\""),
        ("limit=-1", "limit: must be a whole number from 1 to 1000, not \"-1\""),
        ("limit=1e3", "limit: must be a whole number from 1 to 1000, not \"1e3\""),
        ("limit=99999999999999999999", "limit: must be a whole number from 1 to 1000, not \"99999999999999999999\""),
        ("ongoing=yes", "ongoing: must be true or false, not \"yes\""),
        ("since=yesterday", "since: must be an RFC 3339 time (2026-12-05T03:00:00Z) or a duration ago (1h), not \"yesterday\""),
        ("since=2026-13-45T99:00:00Z", "since: not an RFC 3339 time: \"2026-13-45T99:00:00Z\""),
        ("since=400d", "since: must be an RFC 3339 time (2026-12-05T03:00:00Z) or a duration ago (1h), not \"400d\""),
        ("datname=%ZZ", "datname: the value is not valid form-encoded UTF-8"),
        ("datname=%ff", "datname: the value is not valid form-encoded UTF-8"),
        ("%1b%5b2J=1", "unknown parameter \"\\x1b[2J\"; known: since, datname, target, ongoing, limit"),
    ])
    func queryRefusesWithOneLine(_ raw: String, _ line: String) {
        #expect(throws: EpisodeQuery.Error(description: line)) { try EpisodeQuery.parse(raw) }
    }

    @Test func queryRefusesAnOversizedQueryString() {
        let long = "datname=" + String(repeating: "a", count: 5000)
        #expect(throws: EpisodeQuery.Error(description: "the query string is longer than 4096 bytes")) { try EpisodeQuery.parse(long) }
        #expect(throws: EpisodeQuery.Error(description: "the query string is longer than 4096 bytes")) {
            try EpisodeQuery.parse(arguments: [.init(name: "datname", value: String(repeating: "a", count: 5000))])
        }
    }

    /// What the CLI sends is what the API reads back.
    @Test func queryStringRoundTrips() throws {
        let query = EpisodeQuery(since: .ago(.seconds(3600)), datname: "a&b=c ü", target: "t/1", ongoing: true, limit: 3)
        #expect(query.queryString == "since=3600000ms&datname=a%26b%3Dc%20%C3%BC&target=t%2F1&ongoing=true&limit=3")
        #expect(try EpisodeQuery.parse(query.queryString) == query)
    }

    /// Found by the `episode-query` fuzz target (Fuzz/corpus/episode-query/regression-*): a year
    /// before 1970 printed and parsed back as another time, and a span with more than
    /// millisecond precision did not survive `queryString`.
    @Test func queryFuzzRegressions() throws {
        #expect(throws: EpisodeQuery.Error(description: "since: must be between 1970 and 9999, not \"20-12-05T03:00:59Z\"")) {
            try EpisodeQuery.parse("since=20-12-05T03%3A00%3A59Z")
        }
        let span = try EpisodeQuery.parse("since=1.0000001s")
        #expect(span.since == .ago(.milliseconds(1000)))
        #expect(try EpisodeQuery.parse(span.queryString) == span)
    }

    // MARK: EpisodeAPIAnswer

    @Test func answerDecodesListsAndSingleRecords() throws {
        let record = F.full()
        let list = try EpisodeAPI.encoder.encode(["status": "success"]).count > 0  // the encoder exists
        #expect(list)
        let body = EpisodeAPI(store: nil).respond(to: .list(EpisodeQuery()), now: F.at(0))
        #expect(body.status == 404)
        #expect(String(decoding: body.body, as: UTF8.self)
            == #"{"error":"blocking episodes are off: serve runs with --sample.interval 0","errorType":"not_found","status":"error"}"# + "\n")
        #expect(throws: EpisodeAPIAnswer.Failure(description: "the exporter answered 404: blocking episodes are off: serve runs with --sample.interval 0")) {
            try EpisodeAPIAnswer.records(status: 404, body: body.body, single: false)
        }
        let store = try EpisodeStore.open(path: ":memory:")
        try store.upsert(record)
        let api = EpisodeAPI(store: store)
        let listed = api.respond(to: .list(EpisodeQuery()), now: F.at(0))
        #expect(listed.status == 200)
        #expect(try EpisodeAPIAnswer.records(status: 200, body: listed.body, single: false) == [record])
        let one = api.respond(to: .one(id: record.id), now: F.at(0))
        #expect(try EpisodeAPIAnswer.records(status: one.status, body: one.body, single: true) == [record])
        let missing = api.respond(to: .one(id: "0000000000000000"), now: F.at(0))
        #expect(missing.status == 404)
        #expect(try EpisodeAPIAnswer.records(status: missing.status, body: missing.body, single: true) == [])
        #expect(throws: EpisodeAPIAnswer.Failure(description: "the answer is not the episodes API's JSON (is --url an exporter?)")) {
            try EpisodeAPIAnswer.records(status: 200, body: Array("# HELP pg_up\n".utf8), single: false)
        }
    }

    // MARK: Text and Markdown

    @Test func textReadsLikeTheIncidentWriteUp() {
        var record = F.full()
        record.waiters.removeLast()
        record.blockedTotal = 3
        #expect(EpisodeReportText.render(record) == """
            Episode \(record.id) in database app (target prod)
              from 2026-12-04 15:13:39.123 UTC to 2026-12-04 15:13:43.373 UTC (4.3s, 5 samples)

            Root cause: pid 65365 (user app, application "features-worker", client 10.1.2.3:51234), idle in transaction since 2026-12-04 15:12:39.623 UTC (transaction open since 2026-12-04 15:12:39.123 UTC).
              Statement: SELECT * FROM features LIMIT $1
              It held what the first waiters queued for: AccessExclusiveLock on relation features.

            Who waited: 3 sessions at most at once, 3 in all, chains up to 2 deep; the longest waited 4.3s, 11.5s of waiting in all.
              pid 77970 (user deploy, "alembic", the migration of pg_lock_exporter migrate) wanted AccessExclusiveLock on features, waited 4.3s: ALTER TABLE features ADD COLUMN x int
              pid 79250 (user app, "web") wanted AccessShareLock on features, waited 3.8s: SELECT * FROM features WHERE id = $1
              … and 1 more

            How it ended: root_ended — the root's backend is gone (terminated by pg_lock_exporter remediate).

            Prevention: role app had no idle_in_transaction_session_timeout in database app; this ends such a session after 1min idle in a transaction:
              ALTER ROLE app IN DATABASE app SET idle_in_transaction_session_timeout = '1min';

            """)
        #expect(EpisodeReportText.render([]) == "No blocking episodes.\n")
    }

    /// Behind PgBouncer the root cause names the application client, not the pooler; a client
    /// address from the pooler is outside text like any other.
    @Test func behindPgBouncerTheRootCauseNamesTheApplicationClient() {
        var record = F.full()
        record.root.clientAddr = "10.0.0.5"
        record.root.pgbouncerClient = PoolerClient(
            pgbouncer: "10.0.0.5:6432", addr: "10.1.4.7", port: 51234, usename: "app", database: "app",
            applicationName: "features-worker", connectTime: "2026-12-04 15:02:11 UTC")
        let text = EpisodeReportText.render(record)
        #expect(text.contains(
            #"Root cause: pid 65365 (user app, application "features-worker", client=10.1.4.7:51234 via pgbouncer 10.0.0.5:6432, client connected 15:02:11), idle in"#))
        record.root.pgbouncerClient?.addr = "10.1.4.7\u{1B}[2J"
        #expect(!EpisodeReportText.render(record).unicodeScalars.contains { $0.value == 0x1B })
        #expect(EpisodeReportMarkdown.render(record).contains(#"client=10.1.4.7\\x1b\[2J:51234 via pgbouncer"#))
    }

    @Test func hostileTextNeverReachesTheTerminal() {
        var record = F.full()
        record.root.applicationName = "\u{1B}]0;pwned\u{07}worker"
        record.root.query = "SELECT 1\n\u{1B}[2J-- \u{202E}gnp.exe"
        record.root.usename = "evil\"role"
        record.datname = "shop\nINJECTED"
        let text = EpisodeReportText.render(record)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E })
        #expect(text.contains(#"application "\x1b]0;pwned\x07worker""#))
        #expect(text.contains(#"Statement: SELECT 1\x0a\x1b[2J-- \u{202e}gnp.exe"#))
        #expect(text.contains(#"ALTER ROLE "evil""role" IN DATABASE "shop\x0aINJECTED" SET"#))
        let markdown = EpisodeReportMarkdown.render(record)
        #expect(!markdown.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })
        #expect(markdown.contains(#"in shop\\x0aINJECTED"# + "\n"))
    }

    /// Found by the `episode-api-answer` fuzz target (regression-id-del): an id from whatever a
    /// `--url` answered went to the terminal as it was.
    @Test func anIdFromTheAnswerIsShownTerminalSafe() {
        var record = F.full()
        record.id = "684f7fcbd4b3ead\u{7F}3"
        #expect(EpisodeReportText.render(record).hasPrefix(#"Episode 684f7fcbd4b3ead\x7f3 in database app"#))
        #expect(EpisodeReportMarkdown.render(record).hasPrefix(#"## Blocking episode `684f7fcbd4b3ead\x7f3` in app"#))
    }

    @Test func markdownEscapesNamesAndFencesCode() {
        #expect(EpisodeReportMarkdown.escape("a_b*c|d<e>[f](g)") == #"a\_b\*c\|d\<e\>\[f\](g)"#)
        #expect(EpisodeReportMarkdown.code("SELECT `x` FROM t") == "``SELECT `x` FROM t``")
        #expect(EpisodeReportMarkdown.code("`x`") == "`` `x` ``")
        #expect(EpisodeReportMarkdown.cell(EpisodeReportMarkdown.code("a | b")) == #"`a \| b`"#)
        var record = F.full()
        record.waiters = [EpisodeRecord.Waiter(pid: 1, usename: "u|v", applicationName: "<script>", query: "SELECT 1 | 2", waitedSeconds: 1)]
        let markdown = EpisodeReportMarkdown.render(record)
        #expect(markdown.contains(#"| 1 | u\|v | \<script\> |  | 1s | `SELECT 1 \| 2` |"#))
        #expect(markdown.contains("```sql\nALTER ROLE app IN DATABASE app SET idle_in_transaction_session_timeout = '1min';\n```"))
    }

    // MARK: Prevention

    @Test func preventionQuotesAsQuoteIdentAndPicksATimeoutBelowTheIdleTime() throws {
        #expect(EpisodePrevention.quoteIdent("app") == "app")
        #expect(EpisodePrevention.quoteIdent("app_2") == "app_2")
        #expect(EpisodePrevention.quoteIdent("App") == "\"App\"")
        #expect(EpisodePrevention.quoteIdent("2app") == "\"2app\"")
        #expect(EpisodePrevention.quoteIdent("user") == "\"user\"")
        #expect(EpisodePrevention.quoteIdent("current_user") == "\"current_user\"")
        #expect(EpisodePrevention.quoteIdent("public") == "\"public\"")
        #expect(EpisodePrevention.quoteIdent("a\"b") == "\"a\"\"b\"")
        #expect(EpisodePrevention.quoteIdent("") == "\"\"")
        var record = F.full()
        for (idle, expected) in [(4.0, "10s"), (10.0, "10s"), (10.5, "10s"), (45, "30s"), (61, "1min"), (200, "2min"), (86400, "5min")] {
            record.root.stateChange = EpisodeRecord.Timestamp(microsecondsSinceEpoch: record.endedAt!.microsecondsSinceEpoch - Int64(idle * 1e6))
            #expect(EpisodePrevention(record)?.timeout == expected, "idle \(idle)s")
        }
        record.guardTimeouts = EpisodeRecord.GuardTimeouts(idleInTransactionSessionTimeout: 60)
        #expect(EpisodePrevention(record) == nil)
        record.guardTimeouts = nil
        #expect(EpisodePrevention(record) != nil)
        record.root.state = "active"
        #expect(EpisodePrevention(record) == nil)
    }
}
