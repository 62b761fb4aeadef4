import FoundationEssentials

/// `GET /api/v1/episodes` (filters: `EpisodeQuery`) and `GET /api/v1/episodes/{id}`: the episode
/// store as JSON, behind the same TLS and authentication as the metrics (`HTTPServer` applies
/// the web config to every path).
///
/// The answers use the Prometheus HTTP API's envelope, which the tools that read Prometheus
/// already parse: `{"status":"success","data":…}`, and for an error
/// `{"status":"error","errorType":"bad_data","error":"one line"}` with 400 (a bad parameter),
/// 404 (`not_found`: no such episode, or episodes are off) or 503 (`unavailable`: the store
/// could not be read).
public struct EpisodeAPI: Sendable {
    public static let path = "/api/v1/episodes"

    /// What a request to the API asks for, decided from its path and arguments alone.
    public enum Request: Sendable, Equatable {
        case list(EpisodeQuery)
        case one(id: String)
        /// A query the API refuses: the line to answer with.
        case badQuery(String)
        /// `/api/v1/episodes/{id}` with arguments, or an id that no episode can have.
        case noSuchEpisode
    }

    /// nil when sampling, and so the episode store, is off.
    public let store: EpisodeStore?

    public init(store: EpisodeStore?) { self.store = store }

    /// The API request `request` makes, or nil when its path is not the API's.
    public static func request(_ request: HTTPRequest) -> Request? {
        if request.path == path {
            do {
                return .list(try EpisodeQuery.parse(arguments: request.queryArguments))
            } catch {
                return .badQuery(error.description)
            }
        }
        guard request.path.hasPrefix(path + "/") else { return nil }
        let id = request.path.dropFirst(path.count + 1)
        // Ids are 16 lowercase hex digits (`EpisodeRecord.id`): anything else names no episode.
        guard request.queryArguments.isEmpty, id.utf8.count == 16,
            id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return .noSuchEpisode }
        return .one(id: String(id))
    }

    /// The answer to `request`, read from the store; `now` anchors `since=1h`.
    public func respond(to request: Request, now: EpisodeRecord.Timestamp) -> HTTPResponse {
        guard let store else {
            return Self.error(404, "not_found", "blocking episodes are off: serve runs with --sample.interval 0")
        }
        do {
            switch request {
            case .badQuery(let line):
                return Self.error(400, "bad_data", line)
            case .noSuchEpisode:
                return Self.error(404, "not_found", "no such episode")
            case .one(let id):
                guard let record = try store.episode(id: id) else { return Self.error(404, "not_found", "no such episode") }
                return try Self.success(record)
            case .list(let query):
                let records = try store.episodes(
                    since: query.sinceTimestamp(now: now), datname: query.datname, target: query.target, ongoing: query.ongoing,
                    limit: query.limit)
                return try Self.success(records)
            }
        } catch let error as EpisodeStore.Error {
            return Self.error(503, "unavailable", error.description)
        } catch {
            return Self.error(503, "unavailable", "the episodes could not be encoded")
        }
    }

    private struct Success<T: Encodable>: Encodable {
        let status = "success"
        let data: T
    }

    private struct Failure: Encodable {
        let status = "error"
        let errorType: String
        let error: String
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private static func success(_ data: some Encodable) throws -> HTTPResponse {
        json(200, try encoder.encode(Success(data: data)))
    }

    static func error(_ status: Int, _ type: String, _ line: String) -> HTTPResponse {
        json(status, (try? encoder.encode(Failure(errorType: type, error: line))) ?? Data("{\"status\":\"error\"}".utf8))
    }

    private static func json(_ status: Int, _ body: Data) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(body) + [0x0A])
    }
}
