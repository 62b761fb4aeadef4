/// The migration command's environment: the guard's own, plus a `lock_timeout` (and optionally
/// a `statement_timeout`) in `PGOPTIONS` and a tag in `PGAPPNAME`. Pure.
///
/// libpq and the drivers built on it read both variables; `PGOPTIONS` is sent as the startup
/// packet's `options`, where a later `-c` wins over an earlier one, so ours go last while the
/// user's own options are kept. `PGAPPNAME` is used by libpq only when the connection string
/// names no `application_name`; a value the user set is left alone.
public enum ChildEnvironment {
    /// `existing` with `-c lock_timeout=…` (and `-c statement_timeout=…`) appended, in milliseconds.
    public static func pgOptions(existing: String?, lockTimeoutMilliseconds: Int, statementTimeoutMilliseconds: Int?) -> String {
        var parts: [String] = []
        if let existing {
            var trimmed = String(existing.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            // PostgreSQL reads a backslash as escaping the next character: a dangling one at the
            // end would escape the space before our `-c` and fold it into the user's last value,
            // so our timeouts would not be set (found by the pgoptions fuzz target). At the end
            // of the user's own string it escaped nothing, so dropping it changes nothing of theirs.
            if trimmed.utf8.reversed().prefix(while: { $0 == UInt8(ascii: "\\") }).count % 2 == 1 { trimmed.removeLast() }
            if !trimmed.isEmpty { parts.append(trimmed) }
        }
        parts.append("-c lock_timeout=\(lockTimeoutMilliseconds)")
        if let statementTimeoutMilliseconds { parts.append("-c statement_timeout=\(statementTimeoutMilliseconds)") }
        return parts.joined(separator: " ")
    }

    /// What every run's tag starts with (episodes mark a waiter carrying it as a migration).
    public static let tagPrefix = "pg_lock_exporter migrate "

    /// A tag no other run has: `pg_lock_exporter migrate ` and 128 random bits in hexadecimal
    /// (57 characters, under `application_name`'s 63). A pid would not do: every guard that runs
    /// as PID 1 in a container would carry the same one. Other roles can read it in
    /// `pg_stat_activity`, so it is known only to be this run's, not secret.
    public static func randomTag() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = [generator.next(), generator.next()].map { (word: UInt64) in
            let digits = String(word, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return tagPrefix + hex.joined()
    }

    /// The child's environment, and the `application_name` tag when it is ours (nil when the
    /// user set `PGAPPNAME`: the sessions are then known only by their client ports). Without
    /// `setOptions` (`--no-pgoptions`, for a pooler that rejects the startup `options`),
    /// `PGOPTIONS` is left as it is and only the watchdog bounds the waits.
    public static func make(
        parent: [String: String], tag: String, lockTimeoutMilliseconds: Int, statementTimeoutMilliseconds: Int?,
        setOptions: Bool = true
    ) -> (environment: [String: String], tag: String?) {
        var environment = parent
        if setOptions {
            environment["PGOPTIONS"] = pgOptions(
                existing: parent["PGOPTIONS"], lockTimeoutMilliseconds: lockTimeoutMilliseconds,
                statementTimeoutMilliseconds: statementTimeoutMilliseconds)
        }
        if let own = parent["PGAPPNAME"], !own.isEmpty { return (environment, nil) }
        environment["PGAPPNAME"] = tag
        return (environment, tag)
    }
}
