/// A string as an SQL literal (`'it''s'`), for statements shown to a person to run, never sent.
enum SQLLiteral {
    static func quote(_ text: String) -> String {
        var out = "'"
        for ch in text {
            if ch == "'" { out.append("'") }
            out.append(ch)
        }
        return out + "'"
    }
}
