import FoundationEssentials

/// Alertmanager's webhook payload, version "4". Unknown fields are ignored, as the format may grow.
public struct AlertmanagerWebhook: Sendable, Decodable {
    public struct Alert: Sendable, Decodable {
        public var status: String
        public var labels: [String: String]
        public var startsAt: String
        public var fingerprint: String?

        /// Identifies one firing of one alert: a redelivery carries the same key.
        public var deliveryKey: String {
            let identity = fingerprint ?? labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            return identity + "@" + startsAt
        }

        public var isFiring: Bool { status == "firing" }
    }

    public var version: String
    public var status: String
    public var alerts: [Alert]

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Parses and checks the payload; the error says in one line what is wrong.
    public static func parse(_ body: [UInt8]) throws(ParseError) -> AlertmanagerWebhook {
        struct Header: Decodable { var version: String? }
        if let header = try? JSONDecoder().decode(Header.self, from: Data(body)), let version = header.version, version != "4" {
            throw ParseError(description: "unsupported Alertmanager webhook version \"\(TerminalText.safe(String(version.prefix(20))))\" (expected \"4\")")
        }
        let payload: AlertmanagerWebhook
        do {
            payload = try JSONDecoder().decode(AlertmanagerWebhook.self, from: Data(body))
        } catch let DecodingError.keyNotFound(key, _) {
            throw ParseError(description: "invalid Alertmanager webhook: missing field \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            // Key names come from the body: shown terminal-safe and cut, so the error stays one
            // line (found by the alertmanager-webhook fuzz target: a CR in a label name).
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            throw ParseError(description: "invalid Alertmanager webhook: wrong type at \"\(TerminalText.safe(String(path.prefix(200))))\"")
        } catch {
            throw ParseError(description: "invalid Alertmanager webhook: the body is not valid JSON")
        }
        return payload
    }
}
