import FoundationEssentials
import Testing

@testable import PGLockExporter

@Suite struct AccessGuardTests {
    static let guardian: AccessGuard = {
        var config = WebConfig()
        config.basicAuthUsers = ["prometheus": TLSFixture.bcryptHash]
        return AccessGuard(config: config)
    }()

    static func admitted(_ credentials: String) -> Bool {
        let header = "Basic " + Data(credentials.utf8).base64EncodedString()
        return guardian.check(HTTPRequest(method: "GET", path: "/metrics", headers: ["authorization": header])) == nil
    }

    /// Found by the access-guard fuzz target (Fuzz/corpus/access-guard/regression-nul-in-password):
    /// crypt_r reads the password as a C string, so `PASSWORD\0anything` passed as `PASSWORD`.
    @Test func aPasswordWithANulByteIsRefused() {
        #expect(Self.admitted("prometheus:\(TLSFixture.password)"))
        #expect(!Self.admitted("prometheus:\(TLSFixture.password)\0"))
        #expect(!Self.admitted("prometheus:\(TLSFixture.password)\0anything"))
        #expect(!Self.admitted("prometheus\0:\(TLSFixture.password)"))
        #expect(!Self.admitted("prometheus:scrape-pas"))
        #expect(Self.admitted("prometheus:\(TLSFixture.password)"), "the remembered password still passes")
    }
}
