import Synchronization

/// Cumulative counters from the background sampler, so that blocking that starts and ends
/// between two scrapes still shows: `increase(pg_blocked_session_seconds_total[1h])`.
///
/// Each sample reads, per connectable database, how many client sessions are blocked and how
/// many are idle in transaction; the counters add count × time since the previous sample.
/// (`pg_blocking_episodes_total` counts episodes as `EpisodeRecorder` tracks them: one per root
/// blocker with waiters, no longer a database going from no blocked session to some.)
struct SamplerCounters {
    /// The counters of one target, shared by the sampling loop and the scrapes.
    final class Box: Sendable {
        let counters: Mutex<SamplerCounters>
        let interval: Double
        init(interval: Double) {
            self.interval = interval
            counters = Mutex(SamplerCounters(interval: interval))
        }
    }

    struct PerDatabase {
        var blockedSeconds = 0.0
        var idleInTransactionSeconds = 0.0
        var blocked = 0
        var idleInTransaction = 0
    }

    var databases: [String: PerDatabase] = [:]
    var samples = 0
    /// The sampling interval: a previous sample older than twice this says nothing about now.
    let interval: Double
    private var last: ContinuousClock.Instant?

    init(interval: Double) { self.interval = interval }

    mutating func record(_ rows: [SamplerStatement.Row], at now: ContinuousClock.Instant) {
        // Right after a gap (no previous sample) nothing is attributed: the sessions blocked now
        // may have been blocked all along.
        let previous = last.map { (now - $0).seconds }
        let elapsed = min(previous ?? 0, 2 * interval)
        for row in rows {
            var entry = databases[row.datname] ?? PerDatabase()
            // The previous sample's counts held (as far as we know) until now.
            entry.blockedSeconds += Double(entry.blocked) * elapsed
            entry.idleInTransactionSeconds += Double(entry.idleInTransaction) * elapsed
            entry.blocked = row.blocked
            entry.idleInTransaction = row.idleInTransaction
            databases[row.datname] = entry
        }
        last = now
        samples += 1
    }

    /// A sample failed: the time until the next good one is not attributed to anything.
    mutating func gap() {
        last = nil
        for key in databases.keys {
            databases[key]!.blocked = 0
            databases[key]!.idleInTransaction = 0
        }
    }

    /// `known` are the databases of the last collection: their series exist (at 0) before the
    /// first sample reaches them, so they never appear late.
    func write(into w: inout ExpositionWriter, known: [String]) {
        var databases = self.databases
        for name in known where databases[name] == nil { databases[name] = PerDatabase() }
        let names = databases.keys.sorted()
        w.family("pg_blocked_session_seconds_total", .counter, help: "Sum over samples of blocked client sessions × seconds (--sample.interval).")
        for d in names { w.sample("pg_blocked_session_seconds_total", ["datname": d], databases[d]!.blockedSeconds) }
        w.family(
            "pg_idle_in_transaction_session_seconds_total", .counter,
            help: "Sum over samples of client sessions idle in transaction × seconds (--sample.interval).")
        for d in names { w.sample("pg_idle_in_transaction_session_seconds_total", ["datname": d], databases[d]!.idleInTransactionSeconds) }
        w.family("pg_lock_exporter_samples_total", .counter, help: "Background samples taken.")
        w.sample("pg_lock_exporter_samples_total", samples)
    }
}
