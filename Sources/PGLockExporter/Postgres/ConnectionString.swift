import CLibPQ

/// Helpers for libpq connection strings (`key=value ...` or `postgresql://` URIs).
///
/// Parsing is libpq's own (`PQconninfoParse`), so every form libpq accepts is accepted here and
/// nothing of libpq's defaults (PGHOST, PGPASSFILE, service files, ...) is reimplemented.
public enum ConnectionString {
    /// Checks a connection string without connecting. The error never repeats a fragment of
    /// the string that is not a libpq keyword, so a password cannot leak through it.
    public static func validate(_ dsn: String) throws(PostgresError) {
        _ = try parse(dsn)
    }

    /// The connection string with the password (and any other secret) removed, for logs and the
    /// landing page: `host=db port=5432 dbname=app user=monitor`.
    public static func redacted(_ dsn: String) -> String {
        guard let options = try? parse(dsn) else { return "<invalid connection string>" }
        let shown = options.filter { !secretKeywords.contains($0.key) }
        if shown.isEmpty { return "<libpq defaults>" }
        return shown.map { "\($0.key)=\(quoted($0.value))" }.joined(separator: " ")
    }

    /// Keywords whose values are never shown.
    static let secretKeywords: Set<String> = ["password", "sslpassword", "sslkey"]

    /// The options set explicitly in the string, in libpq's keyword order.
    static func parse(_ dsn: String) throws(PostgresError) -> [(key: String, value: String)] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(dsn, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0) } ?? "out of memory"
            PQfreemem(errorMessage)
            throw PostgresError(kind: .connection, message: "invalid connection string: \(scrubbed(message))")
        }
        defer { PQconninfoFree(options) }
        var result: [(key: String, value: String)] = []
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val {
                result.append((String(cString: keyword), String(cString: value)))
            }
            cursor += 1
        }
        return result
    }

    /// libpq quotes fragments of the input in its parse errors (`missing "=" after "..."`).
    /// Keep a quoted fragment only when it is a libpq keyword; anything else might be a secret.
    static func scrubbed(_ message: String) -> String {
        let keywords = knownKeywords()
        var parts = message.split(separator: "\"", omittingEmptySubsequences: false)
        // An odd number of quotes means a quote came from the input itself: the pairing cannot be
        // trusted, so nothing after the first quote is kept.
        if parts.count % 2 == 0 { parts = [parts[0], "…", ""] }
        var out = ""
        for (index, part) in parts.enumerated() {
            if index > 0 { out += "\"" }
            let insideQuotes = index % 2 == 1 && index < parts.count - 1
            if insideQuotes && !keywords.contains(String(part)) && part != "=" {
                out += "…"
            } else {
                out += part
            }
        }
        return PostgresError.oneLine(out)
    }

    static func knownKeywords() -> Set<String> {
        guard let defaults = PQconndefaults() else { return [] }
        defer { PQconninfoFree(defaults) }
        var keywords: Set<String> = []
        var cursor = defaults
        while let keyword = cursor.pointee.keyword {
            keywords.insert(String(cString: keyword))
            cursor += 1
        }
        return keywords
    }

    private static func quoted(_ value: String) -> String {
        if !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "'" || $0 == "\\" }) { return value }
        var escaped = "'"
        for ch in value {
            if ch == "'" || ch == "\\" { escaped.append("\\") }
            escaped.append(ch)
        }
        return escaped + "'"
    }
}
