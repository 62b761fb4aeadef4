/// Text from the server made safe for a terminal: any database user can put escape sequences
/// into a query, an `application_name` or a table name (`ESC ] 0 ; … BEL` retitles the window,
/// `ESC [ 2 J` clears it), so control characters are shown, never sent.
///
/// C0 controls, DEL and C1 controls become `\x1b`-style escapes; so do the Unicode bidirectional
/// overrides, which can make text read differently from what it is.
public enum TerminalText {
    public static func safe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                let hex = String(scalar.value, radix: 16)
                out += scalar.value <= 0xFF ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{" + hex + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Outside text quoted into a one-line message (an error, a log line): terminal-safe and cut
    /// to `limit` characters, with `…` where it was cut.
    public static func excerpt(_ text: some StringProtocol, limit: Int = 100) -> String {
        safe(text.count > limit ? String(text.prefix(limit)) + "…" : String(text))
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
