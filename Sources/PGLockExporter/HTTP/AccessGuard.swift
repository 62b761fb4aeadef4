import CCrypt
import FoundationEssentials
import Synchronization

/// Applies a `WebConfig` to every request before the handler sees it, from the headers alone
/// (`HTTPServer`'s preflight, before any body is read): the client certificate required by
/// `client_auth_type`, then HTTP basic auth when users are configured.
public final class AccessGuard: Sendable {
    public let config: WebConfig
    /// Paths that bring their own authentication (the webhook's bearer token) and skip basic auth.
    public let basicAuthExempt: Set<String>
    /// bcrypt is deliberately slow (~50 ms); a user's last verified password is remembered so
    /// a scrape every few seconds does not pay it each time.
    private let verified = Mutex<[String: String]>([:])

    public init(config: WebConfig, basicAuthExempt: Set<String> = []) {
        self.config = config
        self.basicAuthExempt = basicAuthExempt
    }

    /// nil when the request may proceed, else the refusal.
    public func check(_ request: HTTPRequest) -> HTTPResponse? {
        switch config.clientAuth {
        case .none, .request:
            break
        case _ where request.clientCertificate == .notTLS:
            return .text(403, "403 TLS with a client certificate is required\n")
        case .requireAndVerify where request.clientCertificate != .verified,
             .verifyIfGiven where request.clientCertificate == .invalid,
             .requireAny where request.clientCertificate == .none:
            return .text(403, "403 a valid client certificate is required\n")
        default:
            break
        }
        guard !config.basicAuthUsers.isEmpty, !basicAuthExempt.contains(request.path) else { return nil }
        let refusal = HTTPResponse.text(401, "401 Unauthorized\n", headers: [("WWW-Authenticate", "Basic realm=\"pg_lock_exporter\"")])
        guard let header = request.headers["authorization"], header.hasPrefix("Basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6))),
            let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
        else { return refusal }
        // crypt_r reads the password as a C string: "s3cret\0anything" would pass as "s3cret"
        // (found by the access-guard fuzz target). No password of a hash can hold a NUL.
        guard !pair.utf8.contains(0) else { return refusal }
        let user = String(pair[..<colon]), password = String(pair[pair.index(after: colon)...])
        guard let hash = config.basicAuthUsers[user] else {
            // Spend the same time as for a real user, so user names cannot be probed.
            _ = ccrypt_verify(password, config.basicAuthUsers.values.first!)
            return refusal
        }
        if let known = verified.withLock({ $0[user] }), ConstantTime.equal(known, password) { return nil }
        guard ccrypt_verify(password, hash) == 1 else { return refusal }
        verified.withLock { $0[user] = password }
        return nil
    }
}
