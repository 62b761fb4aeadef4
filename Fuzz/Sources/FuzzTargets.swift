#if canImport(Glibc)
import Glibc
#endif

/// One parser of outside input and the invariants that must hold for any input.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void
}

/// Every fuzz target; `scripts/fuzz --list` prints their names, and `Fuzz/corpus/NAME/` holds
/// each one's committed seeds.
enum FuzzTargets {
    static let all: [FuzzTarget] = [
        DurationTarget.target,
        ConnectionStringTarget.target,
        ConfigYAMLTarget.target,
        WebConfigTarget.target,
        TargetsConfigTarget.target,
        AlertmanagerWebhookTarget.target,
        TerminalTextTarget.target,
        ExpositionTarget.target,
        LogFieldsTarget.target,
        AccessGuardTarget.target,
        ScrapeRouteTarget.target,
        GuardSettingTarget.target,
        EpisodeQueryTarget.target,
        EpisodeAPIAnswerTarget.target,
        HTTPWireTarget.target,
        BlockingGraphTarget.target,
        QueryTextTarget.target,
        PGOptionsTarget.target,
        ProcNetTCPTarget.target,
        LockFailureTarget.target,
        CommandTextTarget.target,
        EpisodeStoreFileTarget.target,
        PgBouncerListingTarget.target,
        HTMLTextTarget.target,
    ]

    /// The target `PG_LOCK_EXPORTER_FUZZ_TARGET` names, read once; `list` prints the names.
    static let selected: FuzzTarget = {
        let name = getenv("PG_LOCK_EXPORTER_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        if let target = all.first(where: { $0.name == name }) { return target }
        let names = all.map(\.name).joined(separator: "\n")
        if name == "list" {
            print(names)
            exit(0)
        }
        print("pg_lock_exporter_fuzz: set PG_LOCK_EXPORTER_FUZZ_TARGET to one of:\n\(names)")
        exit(2)
    }()
}

/// Invariant checks: a failed one crashes, so libFuzzer saves the input that broke it.
enum FuzzCheck {
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("invariant broken: \(message())") }
    }

    /// Errors are one line: they go to logs and terminals as they are.
    static func oneLine(_ text: String, _ what: String) {
        require(!text.contains(where: \.isNewline), "\(what) error is not one line: \(text.debugDescription)")
    }
}

extension Array where Element == UInt8 {
    /// The input as text, invalid UTF-8 repaired as any reader of outside bytes would.
    var text: String { String(decoding: self, as: UTF8.self) }
}
