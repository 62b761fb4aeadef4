import Testing

@testable import PGLockExporter

@Suite struct ListenAddressTests {
    @Test func parsesExporterForms() throws {
        #expect(try ListenAddress(parsing: ":9817") == ListenAddress(host: nil, port: 9817))
        #expect(try ListenAddress(parsing: "127.0.0.1:9817") == ListenAddress(host: "127.0.0.1", port: 9817))
        #expect(try ListenAddress(parsing: "[::1]:80") == ListenAddress(host: "::1", port: 80))
        #expect(try ListenAddress(parsing: "[::1]:80").description == "[::1]:80")
        #expect(try ListenAddress(parsing: "localhost:1").isLoopback)
        #expect(try !ListenAddress(parsing: ":1").isLoopback)
    }

    @Test(arguments: ["9817", "host:", "host:99999", "::1:80", "a:b"])
    func rejects(text: String) {
        #expect(throws: HTTPServerError.self) { try ListenAddress(parsing: text) }
    }
}
