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
        var back = escaped
        for (entity, character) in [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")] {
            back = back.replacingOccurrences(entity, with: character)
        }
        FuzzCheck.require(back == TerminalText.safe(text), "escaping changed the text: \(text.debugDescription)")
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
