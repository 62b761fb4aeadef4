/// One target's episode counters for `/metrics` (docs/metrics.md): episodes started and ended
/// per database, the duration histogram of ended episodes, and (from the tracker) the ongoing
/// ones. Kept by `EpisodeRecorder` under its lock.
struct EpisodeMetrics: Sendable {
    /// `pg_blocking_episode_duration_seconds` buckets: 1 s to 1 h.
    static let durationBuckets: [Double] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]

    struct PerDatabase: Sendable {
        var started = 0
        var ended: [EpisodeRecord.End: Int] = [:]
        /// Ended episodes with a duration at most `durationBuckets[i]` (not cumulative yet).
        var bucketCounts = [Int](repeating: 0, count: EpisodeMetrics.durationBuckets.count)
        var durationCount = 0
        var durationSum = 0.0
    }

    private(set) var databases: [String: PerDatabase] = [:]

    mutating func started(_ record: EpisodeRecord) {
        databases[record.datname, default: PerDatabase()].started += 1
    }

    mutating func ended(_ record: EpisodeRecord) {
        var entry = databases[record.datname] ?? PerDatabase()
        entry.ended[record.end ?? .unobserved, default: 0] += 1
        let duration = max(0, record.durationSeconds)
        if let bucket = Self.durationBuckets.firstIndex(where: { duration <= $0 }) { entry.bucketCounts[bucket] += 1 }
        entry.durationCount += 1
        entry.durationSum += duration
        databases[record.datname] = entry
    }

    /// `known` are the databases of the last collection (their series exist at 0 from the
    /// start); `ongoing` the tracker's ongoing episodes.
    func write(into w: inout ExpositionWriter, known: [String], ongoing: [EpisodeRecord]) {
        var databases = self.databases
        var ongoingCount: [String: Int] = [:]
        for record in ongoing { ongoingCount[record.datname, default: 0] += 1 }
        for name in known + Array(ongoingCount.keys) where databases[name] == nil { databases[name] = PerDatabase() }
        let names = databases.keys.sorted()
        w.family(
            "pg_blocking_episodes_total", .counter,
            help: "Blocking episodes started: a root blocker with at least one session waiting behind it, as sampled (--sample.interval).")
        for d in names { w.sample("pg_blocking_episodes_total", ["datname": d], databases[d]!.started) }
        w.family(
            "pg_blocking_episodes_ended_total", .counter,
            help: "Blocking episodes ended, by how: released, waiters_gone, root_ended or unobserved.")
        for d in names {
            for end in EpisodeRecord.End.allCases {
                w.sample("pg_blocking_episodes_ended_total", ["datname": d, "end": end.rawValue], databases[d]!.ended[end] ?? 0)
            }
        }
        w.family(
            "pg_blocking_episode_duration_seconds", .histogram,
            help: "Duration of ended blocking episodes, from the first waiter's waitstart to the sample that saw the end.")
        for d in names {
            let entry = databases[d]!
            var cumulative = 0
            for (index, bound) in Self.durationBuckets.enumerated() {
                cumulative += entry.bucketCounts[index]
                w.sample("pg_blocking_episode_duration_seconds_bucket", ["datname": d, "le": ExpositionWriter.format(bound)], cumulative)
            }
            w.sample("pg_blocking_episode_duration_seconds_bucket", ["datname": d, "le": "+Inf"], entry.durationCount)
            w.sample("pg_blocking_episode_duration_seconds_sum", ["datname": d], entry.durationSum)
            w.sample("pg_blocking_episode_duration_seconds_count", ["datname": d], entry.durationCount)
        }
        w.family("pg_blocking_episodes_ongoing", .gauge, help: "Blocking episodes going on at the last sample.")
        for d in names { w.sample("pg_blocking_episodes_ongoing", ["datname": d], ongoingCount[d] ?? 0) }
    }
}
