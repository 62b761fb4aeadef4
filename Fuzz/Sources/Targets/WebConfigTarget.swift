import PGLockExporter

/// `--web.config.file`. The files it names come from a reader of the harness's: a valid-looking
/// PEM for paths ending in `.pem`, an error for any other.
enum WebConfigTarget {
    static let certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    static let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"

    static let target = FuzzTarget(name: "web-config") { bytes in
        do {
            _ = try WebConfig.parse(bytes.text, path: "web.yml") { path throws(TextFile.ReadError) in
                if path.hasSuffix("key.pem") { return key }
                if path.hasSuffix(".pem") { return certificate }
                throw TextFile.ReadError(path: path, reason: "No such file or directory")
            }
        } catch {
            FuzzCheck.oneLine(String(describing: error), "web config")
        }
    }
}
