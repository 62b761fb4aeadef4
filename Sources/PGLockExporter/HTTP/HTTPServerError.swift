/// Why the HTTP server could not start.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidAddress(String)
    case cannotListen(String)

    public var description: String {
        switch self {
        case .invalidAddress(let message): "invalid listen address: \(message)"
        case .cannotListen(let message): message
        }
    }
}
