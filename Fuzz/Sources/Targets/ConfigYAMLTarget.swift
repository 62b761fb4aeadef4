import PGLockExporter

/// `ConfigYAML`: the libyaml wrapper under every config file (aliases, nesting, documents).
enum ConfigYAMLTarget {
    static let target = FuzzTarget(name: "config-yaml") { bytes in
        do {
            _ = try ConfigYAML.parse(bytes.text)
        } catch {
            FuzzCheck.oneLine(String(describing: error), "YAML")
        }
    }
}
