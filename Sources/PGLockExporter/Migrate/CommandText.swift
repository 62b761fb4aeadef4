/// The migration command as the guard shows it: shell-quoted, with passwords taken out. A
/// migration is often given its database URL on the command line (`psql postgresql://u:pw@db/app`,
/// `flyway -password=…`), and the guard's output goes to CI logs. The text line and the JSON
/// `command` field both come from `redactedWords`, so the two forms hide the same things.
public enum CommandText {
    /// The command as one shell-quoted line, passwords taken out.
    public static func shown(_ words: [String]) -> String {
        redactedWords(words).map(quoted).joined(separator: " ")
    }

    /// Each word with its passwords taken out; the word after a password flag (`--password X`,
    /// `--db-password X`, `-password X`, `--passwd X`) becomes `…` whole. Pure: a fuzz target's
    /// entry point. `-pX` is left alone: for psql and most PostgreSQL tools `-p` is the port.
    public static func redactedWords(_ words: [String]) -> [String] {
        words.indices.map { index in
            let previous = index > 0 ? words[index - 1].lowercased() : ""
            let secretFlag = previous.hasPrefix("-") && !previous.contains("=")
                && (previous.hasSuffix("password") || previous.hasSuffix("passwd"))
            return secretFlag ? "…" : redacted(words[index])
        }
    }

    /// A password in a URI's user info (`://user:pw@`, up to the authority's last `@`) or after
    /// `password=` (libpq, JDBC, `PGPASSWORD=`, `--password=`) becomes `…`.
    public static func redacted(_ word: String) -> String {
        var out = word.replacing(#/(:\/\/[^\/:@\s]*):[^\/\s]*@/#) { "\($0.1):…@" }
        out = out.replacing(#/(?i)((?:ssl)?passw(?:or)?d\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s;]*)/#) { "\($0.1)…" }
        return out
    }

    /// As a shell would read it back.
    public static func quoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%…".contains($0) }
        return plain ? word : "'" + word.replacing("'", with: "'\\''") + "'"
    }
}
