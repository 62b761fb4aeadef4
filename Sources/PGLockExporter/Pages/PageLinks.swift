/// Where people open one target's pages, from `--web.external-url` (the URL under which the
/// exporter is reached from outside, as Prometheus's own flag of that name): exported with every
/// body about the target as `pg_lock_exporter_web_info{external_url, tree_url}`, so that an alert
/// can link its `/tree` (its `tree_url` annotation) and the dashboard its rows, whatever the
/// instance label says about how Prometheus reaches the exporter.
public struct PageLinks: Sendable, Equatable {
    /// The external URL, ending with `/`.
    public let externalURL: String
    /// The target's `/tree`: `…/tree` for the single target, `…/tree?target=NAME` for a named one.
    public let treeURL: String

    /// `externalURL` as given (checked by `parse`); `target` nil for the single target.
    public init(externalURL: String, target: String?) {
        self.externalURL = externalURL
        treeURL = externalURL + "tree" + (target.map { "?target=" + FormDecoding.encode($0) } ?? "")
    }

    /// Checks `--web.external-url`: an absolute http or https URL with a host, no query, no
    /// fragment, no whitespace or control character; returns it ending with `/`.
    public static func parse(_ text: String) throws(ParseError) -> String {
        guard text.utf8.count <= 2048, !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw ParseError(description: "must be a URL without spaces or control characters, at most 2048 bytes")
        }
        let lower = text.lowercased()
        guard let scheme = ["https://", "http://"].first(where: { lower.hasPrefix($0) }) else {
            throw ParseError(description: "must start with http:// or https://")
        }
        let rest = text.dropFirst(scheme.count)
        guard let host = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first, !host.isEmpty else {
            throw ParseError(description: "names no host")
        }
        guard !text.contains("?"), !text.contains("#") else { throw ParseError(description: "must have no query (?) or fragment (#)") }
        return text.hasSuffix("/") ? text : text + "/"
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    func write(into w: inout ExpositionWriter) {
        w.family(
            "pg_lock_exporter_web_info", .gauge,
            help: "Where people open this target's pages (--web.external-url): its /tree; always 1, absent when the flag is not set.")
        w.sample("pg_lock_exporter_web_info", ["external_url": externalURL, "tree_url": treeURL], 1)
    }
}
