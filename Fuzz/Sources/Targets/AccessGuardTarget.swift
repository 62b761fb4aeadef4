import FoundationEssentials
import PGLockExporter

/// Basic auth as `AccessGuard` checks it, with any `Authorization` header: only the one user with
/// the one password gets through (`prometheus:s3cret`, a bcrypt hash of cost 4 so each check is
/// cheap), and nothing in the header can crash the decoding.
enum AccessGuardTarget {
    static let guardian: AccessGuard = {
        var config = WebConfig()
        config.basicAuthUsers = ["prometheus": "$2b$04$T89Zt9DcIkpRpB4d6I84IuxQBiGq0O0sgTUI9sLG6.HFw0YlPRn1K"]
        return AccessGuard(config: config, basicAuthExempt: ["/webhook"])
    }()

    static let target = FuzzTarget(name: "access-guard") { bytes in
        let header = bytes.text
        let request = HTTPRequest(
            method: "GET", path: "/metrics", query: [:], headers: ["authorization": header], body: [],
            bodyTooLarge: false, clientCertificate: .notTLS)
        let admitted = guardian.check(request) == nil
        let expected = header.hasPrefix("Basic ")
            && Data(base64Encoded: String(header.dropFirst(6))).map { Array($0) } == Array("prometheus:s3cret".utf8)
        FuzzCheck.require(admitted == expected, "header \(header.debugDescription) admitted: \(admitted)")
    }
}
