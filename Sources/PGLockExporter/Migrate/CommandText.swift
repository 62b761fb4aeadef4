/// The migration command as the guard shows it: shell-quoted, with passwords taken out. A
/// migration is often given its database URL on the command line (`psql postgresql://u:pw@db/app`,
/// `flyway -password=…`), and the guard's output goes to CI logs.
public enum CommandText {
    public static func shown(_ words: [String]) -> String {
        var out: [String] = []
        for (index, word) in words.enumerated() {
            let previous = index > 0 ? words[index - 1].lowercased() : ""
            let secretFlag = previous.hasPrefix("-") && previous.hasSuffix("password") && !previous.contains("=")
            out.append(quoted(secretFlag ? "…" : redacted(word)))
        }
        return out.joined(separator: " ")
    }

    /// A password in a URI's user info (`://user:pw@`) or after `password=` (libpq, JDBC,
    /// `PGPASSWORD=`, `-password=`) becomes `…`.
    public static func redacted(_ word: String) -> String {
        var out = word.replacing(#/(:\/\/[^\/:@\s]*):[^@\/\s]*@/#) { "\($0.1):…@" }
        out = out.replacing(#/(?i)((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s;]*)/#) { "\($0.1)…" }
        return out
    }

    /// As a shell would read it back.
    public static func quoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%…".contains($0) }
        return plain ? word : "'" + word.replacing("'", with: "'\\''") + "'"
    }
}
