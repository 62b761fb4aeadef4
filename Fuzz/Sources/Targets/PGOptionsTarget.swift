import PGLockExporter

/// `migrate`'s `PGOPTIONS`: the user's own options (any text) with the guard's timeouts added.
/// PostgreSQL splits the string at unescaped white space, a backslash escaping the next
/// character (`pg_split_opts`), reads the words with the backend's getopt, and a later `-c`
/// wins. Invariant: options PostgreSQL accepts end with the guard's `lock_timeout` and
/// `statement_timeout`, whatever the user's options hold (options it refuses fail the connection
/// loudly, which the guard does not retry).
enum PGOptionsTarget {
    static let target = FuzzTarget(name: "pgoptions") { bytes in
        let existing = bytes.text
        let options = ChildEnvironment.pgOptions(existing: existing, lockTimeoutMilliseconds: 1500, statementTimeoutMilliseconds: 60000)
        // PostgreSQL refuses options it cannot read with a FATAL error: loud, and the guard does not
        // retry it. What it accepts must carry the guard's timeouts as the last word.
        guard let settings = settingsAsPostgresReadsThem(options) else { return }
        FuzzCheck.require(
            settings.last { $0.name == "lock_timeout" }?.value == "1500"
                && settings.last { $0.name == "statement_timeout" }?.value == "60000",
            "the guard's timeouts do not win in \(options.debugDescription)")
    }

    /// `pg_split_opts`, then the backend's getopt (`-c name=value`, `-cname=value`,
    /// `--name=value`, clustered flags); nil where PostgreSQL refuses the options.
    static func settingsAsPostgresReadsThem(_ options: String) -> [(name: String, value: String)]? {
        var words: [[UInt8]] = []
        var bytes = Array(options.utf8)[...]
        let space: Set<UInt8> = [9, 10, 11, 12, 13, 32]
        while true {
            while let first = bytes.first, space.contains(first) { bytes.removeFirst() }
            guard !bytes.isEmpty else { break }
            var word: [UInt8] = []
            var escaped = false
            while let byte = bytes.first {
                if space.contains(byte) && !escaped { break }
                if !escaped && byte == UInt8(ascii: "\\") {
                    escaped = true
                } else {
                    escaped = false
                    word.append(byte)
                }
                bytes.removeFirst()
            }
            words.append(word)
        }
        // The backend's getopt string (postgres.c): "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:".
        let takesValue = Set("BcCDdfhkNprStvW-".utf8), flags = Set("bEeFijlnOPsT".utf8)
        var settings: [(String, String)] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            index += 1
            guard word.count >= 2, word[0] == UInt8(ascii: "-") else { return nil }  // a stray argument: refused
            if word == Array("--".utf8) { return index == words.count ? settings : nil }
            var position = 1
            while position < word.count {
                let letter = word[position]
                position += 1
                if flags.contains(letter) { continue }
                guard takesValue.contains(letter) else { return nil }
                let value: [UInt8]
                if position < word.count {
                    value = Array(word[position...])
                } else {
                    guard index < words.count else { return nil }  // "-c" with nothing after it
                    value = words[index]
                    index += 1
                }
                if letter == UInt8(ascii: "c") || letter == UInt8(ascii: "-") {
                    let text = String(decoding: value, as: UTF8.self)
                    guard let equals = text.firstIndex(of: "=") else { return nil }  // "-c x" is refused
                    let name = String(text.prefix(upTo: equals).map { $0 == "-" ? "_" : $0 })
                    settings.append((name, String(text.suffix(from: text.index(after: equals)))))
                }
                break
            }
        }
        return settings
    }
}
