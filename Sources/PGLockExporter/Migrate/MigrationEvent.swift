import FoundationEssentials

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One thing the migration guard reports: a line (or a few) of text for people, and the same
/// facts as one JSON object for CI logs (`--format json`). Both go to standard error, so the
/// migration's own stdout stays untouched.
public struct MigrationEvent: Sendable, Encodable {
    public enum Kind: String, Sendable, Encodable {
        case preflight, attempt, lockWait = "lock_wait", blocker, cancelled, terminated, skipped, retry, done, warning
    }

    public var event: Kind
    public var time = StructuredLogHandler.timestamp()
    public var attempt: Int?
    /// The migration's session (lock_wait, blocker, cancelled) or the one acted on (terminated).
    public var pid: Int32?
    public var waitSeconds: Double?
    public var blockedBy: [Int32]?
    public var lockMode: String?
    public var relation: String?
    /// The blocking tree the migration waits in, root first (`check --format json`'s shape).
    public var tree: BlockingReport.Node?
    /// Preflight: every blocking tree of the database, and the idle-in-transaction sessions
    /// holding locks that block nobody yet.
    public var trees: [BlockingReport.Node]?
    public var idleInTransaction: [Int32]?
    public var decision: Decision?
    public var delaySeconds: Double?
    public var command: [String]?
    public var summary: Summary?
    /// The text shown to people; one or more lines.
    public var message: String

    public init(_ event: Kind, attempt: Int? = nil, message: String) {
        self.event = event
        self.attempt = attempt
        self.message = message
    }

    /// The closing facts (`done`).
    public struct Summary: Sendable, Encodable {
        public var outcome: String
        public var exitStatus: Int32
        public var attempts: Int
        public var lockWaitSeconds: Double
        public var seconds: Double
        public var sessionsWatched: Int
        public var blockers: [Blocker]

        enum CodingKeys: String, CodingKey {
            case outcome, exitStatus = "exit_status", attempts, lockWaitSeconds = "lock_wait_seconds", seconds
            case sessionsWatched = "sessions_watched", blockers
        }
    }

    /// A root blocker the migration waited behind, as last seen.
    public struct Blocker: Sendable, Encodable, Equatable {
        public var pid: Int32
        public var state: String
        public var stateSeconds: Double?
        public var usename: String?
        public var applicationName: String
        public var clientAddr: String
        public var terminated: Bool

        enum CodingKeys: String, CodingKey {
            case pid, state, stateSeconds = "state_seconds", usename, applicationName = "application_name"
            case clientAddr = "client_addr", terminated
        }

        /// Role and application names come from the server: shown terminal-safe, as `check` does.
        var text: String {
            TerminalText.safe(
                "pid \(pid) (\(state)" + (stateSeconds.map { " \(DurationText.format($0))" } ?? "") + ", user=\(usename ?? "?")"
                    + (applicationName.isEmpty ? "" : ", app=\(applicationName)") + ", client=\(clientAddr)"
                    + (terminated ? ", terminated" : "") + ")")
        }
    }

    enum CodingKeys: String, CodingKey {
        case event, time, attempt, pid, waitSeconds = "wait_seconds", blockedBy = "blocked_by", lockMode = "lock_mode"
        case relation, tree, trees, idleInTransaction = "idle_in_transaction", decision, delaySeconds = "delay_seconds", command, summary, message
    }
}

extension MigrationEvent {
    /// A duration for messages: `DurationText`'s form, with tenths below 10s (`1.5s`, not `2s`),
    /// so a limit such as `--max-lock-wait 1.5s` reads back as given.
    public static func duration(_ span: TimeSpan) -> String { duration(span.seconds) }

    public static func duration(_ seconds: Double) -> String {
        guard seconds >= 1 && seconds < 10 else { return DurationText.format(seconds) }
        let tenths = Int((seconds * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
    }
}

/// Writes events to standard error, as `migrate:` text lines or one JSON object a line. Each
/// event is one `write(2)`, so it never interleaves with the child's own stderr mid-line.
public struct MigrationEventOutput: Sendable {
    public enum Format: String, Sendable { case text, json }
    public let format: Format

    public init(format: Format) { self.format = format }

    public func emit(_ event: MigrationEvent) {
        var text: String
        switch format {
        case .text:
            text = event.message.split(separator: "\n", omittingEmptySubsequences: false).map { "migrate: \($0)" }
                .joined(separator: "\n") + "\n"
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            text = ((try? encoder.encode(event)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
        }
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
