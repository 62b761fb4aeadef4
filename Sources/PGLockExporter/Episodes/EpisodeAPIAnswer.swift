import FoundationEssentials

/// Reads what `GET /api/v1/episodes` answered (`EpisodeAPI`), for `pg_lock_exporter episodes
/// --url`: outside input, so it has a fuzz target. Pure.
public enum EpisodeAPIAnswer {
    /// One line: the exporter's own error line, or what is wrong with the answer.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    private struct Envelope<T: Decodable>: Decodable {
        var status: String
        var data: T?
        var error: String?
    }

    private struct Status: Decodable {
        var status: String?
        var error: String?
    }

    /// The records of a list answer, or of a single one (`single`: `/api/v1/episodes/{id}`, where
    /// a 404 "no such episode" is no episode rather than an error).
    public static func records(status: Int, body: [UInt8], single: Bool) throws(Failure) -> [EpisodeRecord] {
        let data = Data(body)
        if status != 200 {
            let line = (try? JSONDecoder().decode(Status.self, from: data))?.error.map { TerminalText.excerpt($0, limit: 300) }
            if single && status == 404 && line == "no such episode" { return [] }
            throw Failure(description: "the exporter answered \(status)" + (line.map { ": " + $0 } ?? ""))
        }
        do {
            if single {
                let envelope = try JSONDecoder().decode(Envelope<EpisodeRecord>.self, from: data)
                guard envelope.status == "success", let record = envelope.data else { throw Failure(description: "the answer has no episode") }
                return [record]
            }
            let envelope = try JSONDecoder().decode(Envelope<[EpisodeRecord]>.self, from: data)
            guard envelope.status == "success", let records = envelope.data else { throw Failure(description: "the answer has no episodes") }
            return records
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "the answer is not the episodes API's JSON (is --url an exporter?)")
        }
    }
}
