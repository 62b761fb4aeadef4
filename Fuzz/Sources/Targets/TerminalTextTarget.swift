import PGLockExporter

/// `TerminalText.safe`: what `check`, `remediate` and `migrate` print of the server's text. The
/// result carries no control character or bidirectional override, so it is its own safe form.
enum TerminalTextTarget {
    static let target = FuzzTarget(name: "terminal-text") { bytes in
        let safe = TerminalText.safe(bytes.text)
        FuzzCheck.require(
            !safe.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E },
            "unsafe scalar left in \(safe.debugDescription)")
        FuzzCheck.require(TerminalText.safe(safe) == safe, "not idempotent on \(safe.debugDescription)")
    }
}
