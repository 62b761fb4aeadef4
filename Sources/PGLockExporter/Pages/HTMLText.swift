/// Text from the server or a client, made safe for an HTML page: control characters, bidi
/// overrides and other invisible code points are shown as escapes first (`TerminalText.safe`,
/// so `\x1b[2J` reads as those characters and a pid or statement copies as it is shown), then
/// the five characters HTML gives meaning are escaped. Every value a page shows goes through
/// this; no markup is ever built from outside text.
public enum HTMLText {
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in TerminalText.safe(text).unicodeScalars {
            switch scalar {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A query-string value (`?target=NAME`): percent-encoded, then escaped for an attribute.
    public static func queryValue(_ text: String) -> String {
        escape(FormDecoding.encode(text))
    }
}
