/// How long one scrape may take: what Prometheus asks for in `X-Prometheus-Scrape-Timeout-Seconds`,
/// held between a floor and the operator's `--web.scrape-timeout` (the ceiling), less a margin so
/// the reply arrives before Prometheus gives up.
///
/// The header comes from anyone who can reach the port (no auth by default), so it is a request,
/// not an order: a value above the ceiling gets the ceiling (a client cannot make a collection
/// hold the target's connection for longer than the operator allows), and a value that is not a
/// positive finite number (NaN, ±infinity, zero, negative, garbage) is ignored: the scrape gets
/// the ceiling, the same as a request without the header. Pure, for tests and fuzzing.
public enum ScrapeBudget {
    /// The least a scrape gets, however small the header: enough for one round trip to a nearby
    /// server, so a tiny header still gets an answer that says `pg_up` truthfully more often than not.
    public static let floor = TimeSpan.milliseconds(250)

    /// Answer this much before the timeout (or after 90% of it, whichever is earlier), so the
    /// reply has time to travel.
    public static let margin = TimeSpan.milliseconds(500)

    /// The timeout the request gets: the header's positive finite number of seconds, at most
    /// `ceiling`; `ceiling` when the header is absent or is not such a number.
    public static func timeout(header: String?, ceiling: TimeSpan) -> TimeSpan {
        guard let header, let seconds = Double(trimmed(header)), seconds.isFinite, seconds > 0 else { return ceiling }
        return min(TimeSpan(clampingSeconds: seconds), ceiling)
    }

    /// The scrape's budget: the timeout less the margin (or 90% of it, whichever is less), at
    /// least `floor` and never more than `ceiling`.
    public static func budget(header: String?, ceiling: TimeSpan) -> TimeSpan {
        let timeout = timeout(header: header, ceiling: ceiling)
        return min(ceiling, max(floor, min(timeout - margin, timeout.scaled(by: 0.9))))
    }

    /// Optional whitespace around a header value is not part of it (RFC 9110, 5.5).
    private static func trimmed(_ text: String) -> Substring {
        var value = Substring(text)
        while let first = value.first, first == " " || first == "\t" { value.removeFirst() }
        while let last = value.last, last == " " || last == "\t" { value.removeLast() }
        return value
    }
}
