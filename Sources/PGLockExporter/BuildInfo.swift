/// The exporter's version, reported by `--version` and `pg_lock_exporter_build_info`.
public enum BuildInfo {
    public static let version = "0.1.0"
}
