import PGLockExporter

/// `QueryText.render`: a statement as `pg_stat_activity.query` shows it, normalized by libpg_query
/// or reduced by the literal scanner. Two invariants, on input of any shape:
/// - a marker the harness puts inside a constant or comment never reaches the output: the input is
///   `FORM CUT PREFIX \u{1} CONTENT \u{1} SUFFIX`; the target writes `PREFIX`, then `CONTENT` with
///   the marker in the form `FORM` picks (`'…'`, `E'…'`, `U&'…'`, `N'…'`, `B'…'`, `X'…'`,
///   `$tag$…$tag$`, `/*…*/`, `--…`, a number), then `SUFFIX`, and cuts the whole where `CUT` says
///   (0: not cut), as `track_activity_query_size` cuts it;
/// - the output holds no constant or comment any more: rendering it again gives it back unchanged.
enum QueryTextTarget {
    static let marker = "FZMARKQ"
    static let numericMarker = "8316402957"

    static let target = FuzzTarget(name: "query-text") { bytes in
        checkIdempotent(bytes)
        guard bytes.count >= 2 else { return }
        let parts = bytes.dropFirst(2).split(separator: 1, maxSplits: 2, omittingEmptySubsequences: false)
            .map { String(decoding: $0.filter { $0 != 0 }, as: UTF8.self) }
        var prefix = parts[0]
        let content = parts.count > 1 ? parts[1] : ""
        let suffix = parts.count > 2 ? parts[2] : ""
        // The constant must start where PostgreSQL reads a new token: after a prefix that leaves no
        // constant, comment or quoted identifier open (in either reading of a backslash).
        if !closes(prefix) { prefix = "SELECT" }
        let statement = Array((prefix + " " + constant(form: bytes[0], content: content) + " " + suffix).utf8)
        let cut = bytes[1] == 0 ? statement : Array(statement.prefix(statement.count * Int(bytes[1]) / 256))
        guard let result = QueryText.render(bytes: cut) else { fatalError("no result under normalized") }
        FuzzCheck.require(!result.text.contains(marker) && !result.text.contains(numericMarker),
                          "marker leaked: \(cut.text.debugDescription) -> \(result.text.debugDescription)")
    }

    /// The input itself as a statement: rendering the output again changes nothing (it holds no
    /// constant or comment), and the other policies do not crash.
    static func checkIdempotent(_ bytes: [UInt8]) {
        guard let once = QueryText.render(bytes: bytes), let twice = QueryText.render(once.text) else {
            fatalError("no result under normalized")
        }
        FuzzCheck.require(twice.text == once.text, "not idempotent: \(bytes.text.debugDescription) -> \(once.text.debugDescription) -> \(twice.text.debugDescription)")
        FuzzCheck.require(QueryText.render(bytes: bytes, policy: .full)?.text == bytes.text, "full changed the text")
        FuzzCheck.require(QueryText.render(bytes: bytes, policy: .none) == nil, "none kept something")
    }

    /// Whether a constant written after `prefix` and a space starts a token of its own: rendering
    /// `prefix + " '"` cuts an unterminated constant at the quote, so the marker-free probe text
    /// after it must be gone and the prefix's own output must survive as a prefix.
    static func closes(_ prefix: String) -> Bool {
        guard let alone = QueryText.render(prefix + " x9q"), alone.text.hasSuffix("x9q"),
              let probe = QueryText.render(prefix + " 'x9q") else { return false }
        return !probe.text.contains("x9q")
    }

    static func constant(form: UInt8, content: String) -> String {
        let body = content + marker + content
        switch form % 11 {
        case 0: return "'" + body.replacing("'", with: "''") + "'"
        case 1: return "E'" + body.replacing("\\", with: "\\\\").replacing("'", with: "\\'") + "'"
        case 2: return "U&'" + body.replacing("'", with: "''") + "'"
        case 3: return "N'" + body.replacing("'", with: "''") + "'"
        case 4: return "B'" + body.replacing("'", with: "") + "'"
        case 5: return "X'" + body.replacing("'", with: "") + "'"
        case 6:
            let tag = String(content.unicodeScalars.filter { ("a"..."z").contains($0) }.prefix(3).map(Character.init))
            let delimiter = "$" + tag + "$"
            var inside = body
            while inside.contains(delimiter) { inside = inside.replacing(delimiter, with: "") }
            // A body ending in `$` + the tag would close early with the delimiter's first bytes.
            return delimiter + inside + " " + delimiter
        case 7:
            var inside = body
            while inside.contains("*/") || inside.contains("/*") {
                inside = inside.replacing("*/", with: "").replacing("/*", with: "")
            }
            return "/*" + inside + " */"
        case 8: return "--" + body.replacing("\n", with: " ").replacing("\r", with: " ") + "\n"
        case 9: return ["", "0x", "1_", ".", "-"][content.utf8.count % 5] + numericMarker + ["", "e5", "_1", ".5", "e-3"][content.utf8.count % 5]
        default: return "(" + "'" + content.replacing("'", with: "''") + "' || $$" + marker + " $$)"
        }
    }
}
