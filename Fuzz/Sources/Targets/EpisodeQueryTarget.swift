import PGLockExporter

/// A query string sent to `GET /api/v1/episodes`, by anyone who can reach the exporter. Parsing
/// either refuses it with one line (no control characters, at most 300 characters) or gives a
/// query whose limit is in range and whose own query string parses back to it.
enum EpisodeQueryTarget {
    static let target = FuzzTarget(name: "episode-query") { bytes in
        let text = bytes.text
        do throws(EpisodeQuery.Error) {
            let query = try EpisodeQuery.parse(text)
            FuzzCheck.require((1...EpisodeQuery.maximumLimit).contains(query.limit), "limit \(query.limit) from \(text.debugDescription)")
            let again = try? EpisodeQuery.parse(query.queryString)
            FuzzCheck.require(again == query, "\(query.queryString.debugDescription) does not parse back to \(query)")
        } catch {
            let line = error.description
            FuzzCheck.require(line.count <= 300 && !line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "error \(line.debugDescription)")
        }
    }
}
