@testable import PGLockExporter

/// `ConnectionString`: DSNs and URIs from flags, files and the environment. A password put in
/// by the harness (the canary) must never come out of a validation error (which quotes no
/// fragment of the input but libpq keywords), nor out of the redacted form once it parsed as
/// the password.
enum ConnectionStringTarget {
    static let canary = "Zq7canarySECRET9"

    static let target = FuzzTarget(name: "dsn") { bytes in
        let text = Array(bytes.dropFirst()).text
        let dsn: String
        switch bytes.first.map({ $0 % 4 }) {
        case 0: dsn = text + " password=" + canary
        case 1: dsn = "postgresql://user:" + canary + "@" + text
        case 2: dsn = "password=" + canary + " " + text
        default: dsn = text
        }
        do throws(PostgresError) {
            try ConnectionString.validate(dsn)
        } catch {
            FuzzCheck.oneLine(error.message, "dsn")
            FuzzCheck.require(!error.message.contains(canary), "the password leaked into \(error.message.debugDescription)")
        }
        let redacted = ConnectionString.redacted(dsn)
        // Appended to a URI, the canary can be part of the host: only a parsed password counts.
        let password = (try? ConnectionString.parse(dsn))?.first { $0.key == "password" }?.value
        if password == canary {
            FuzzCheck.require(!redacted.contains(canary), "the password leaked into \(redacted.debugDescription)")
        }
        if let options = try? ConnectionString.parse(redacted) {
            FuzzCheck.require(
                !options.contains { ConnectionString.secretKeywords.contains($0.key) },
                "the redacted form still sets a secret: \(redacted.debugDescription)")
        }
    }
}
