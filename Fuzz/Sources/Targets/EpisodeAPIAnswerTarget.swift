import PGLockExporter

/// What `pg_lock_exporter episodes --url` reads from whatever answers at that URL. Decoding
/// gives records or one line; every record then renders as text and Markdown with no control
/// character reaching the terminal but the line breaks the report writes itself.
enum EpisodeAPIAnswerTarget {
    static let target = FuzzTarget(name: "episode-api-answer") { bytes in
        let status = bytes.first.map { $0 % 2 == 0 ? 200 : 404 } ?? 200
        let body = Array(bytes.dropFirst())
        for single in [false, true] {
            guard let records = try? EpisodeAPIAnswer.records(status: status, body: body, single: single) else { continue }
            for output in [EpisodeReportText.render(records), EpisodeReportMarkdown.render(records)] {
                FuzzCheck.require(
                    !output.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) },
                    "a control character in \(output.debugDescription)")
            }
        }
    }
}
