import PGLockExporter

/// How `migrate` shows its command (text line and JSON): any words around a password in one of
/// the forms it hides (`--password X`, `--password=X`, a URI's user info, `PGPASSWORD=`, a
/// conninfo `password=`). The input's words are split at NUL; the first byte picks the form.
/// Invariant: the password (a canary) never shows.
enum CommandTextTarget {
    static let canary = "Zq7canarySECRET9"

    static let target = FuzzTarget(name: "command-text") { bytes in
        guard let first = bytes.first else { return }
        let words = Array(bytes.dropFirst()).split(separator: 0, omittingEmptySubsequences: false).map { Array($0).text }
        let half = words.count / 2
        let before = Array(words[..<half]), after = Array(words[half...])
        let affix = (before.last ?? "").filter { $0 != "\0" }
        let secret: [String]
        switch first % 6 {
        case 0: secret = ["--password", canary]
        case 1: secret = ["--password=" + canary]
        case 2: secret = [affix + "postgresql://user:" + canary + "@db/app"]
        case 3: secret = ["PGPASSWORD=" + canary]
        case 4: secret = ["host=db password=" + canary + " dbname=app"]
        default: secret = ["-password", canary]
        }
        let command = before + secret + after
        let shown = CommandText.shown(command)
        FuzzCheck.require(!shown.contains(canary), "the password shows in \(shown.debugDescription)")
        FuzzCheck.require(!CommandText.redactedWords(command).joined(separator: " ").contains(canary), "the JSON words show the password")
    }
}
