import PGLockExporter

/// `HTMLText.escape`, which every value on the pages goes through: whatever the bytes, the
/// result opens no tag, attribute or entity of its own and carries no control character, and
/// reading its entities back gives the terminal-safe text (nothing is lost or added).
enum HTMLTextTarget {
    static let target = FuzzTarget(name: "html-text") { bytes in
        let text = bytes.text
        let escaped = HTMLText.escape(text)
        FuzzCheck.require(!escaped.contains(where: { "<>\"'".contains($0) }), "markup in \(escaped.debugDescription)")
        FuzzCheck.require(
            !escaped.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) },
            "a control character in \(escaped.debugDescription)")
        FuzzCheck.require(unescape(escaped) == Array(TerminalText.safe(text).unicodeScalars), "escaping changed the text: \(text.debugDescription)")
    }

    /// The five entities back to their characters, scalar by scalar (a combining mark after `;`
    /// makes one Character with it, so a Character-level replace would miss the entity).
    static func unescape(_ escaped: String) -> [Unicode.Scalar] {
        let entities: [(String, Unicode.Scalar)] = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")]
        let scalars = Array(escaped.unicodeScalars)
        var out: [Unicode.Scalar] = []
        var index = 0
        scan: while index < scalars.count {
            if scalars[index] == "&" {
                for (entity, character) in entities {
                    let pattern = Array(entity.unicodeScalars)
                    if index + pattern.count <= scalars.count, Array(scalars[index..<(index + pattern.count)]) == pattern {
                        out.append(character)
                        index += pattern.count
                        continue scan
                    }
                }
            }
            out.append(scalars[index])
            index += 1
        }
        return out
    }
}
