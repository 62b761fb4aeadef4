import PGLockExporter

/// `--config.file` (named targets). `password_env: SET` and any `password_file` resolve to a
/// canary, which must never appear in an error.
enum TargetsConfigTarget {
    static let canary = "Zq7canarySECRET9"

    static let target = FuzzTarget(name: "targets-config") { bytes in
        do {
            let config = try TargetsConfig.parse(
                bytes.text, path: "targets.yml", environment: { $0 == "SET" ? canary : nil },
                readSecret: { _ throws(TextFile.ReadError) in canary })
            for (name, _) in config.targets {
                FuzzCheck.require(
                    !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || "_-.".contains($0) },
                    "target name \(name.debugDescription) accepted")
            }
        } catch {
            FuzzCheck.oneLine(String(describing: error), "targets config")
            FuzzCheck.require(!String(describing: error).contains(canary), "the password leaked into \(String(describing: error).debugDescription)")
        }
    }
}
