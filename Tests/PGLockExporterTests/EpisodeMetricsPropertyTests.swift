import PropertyBased
import Testing

@testable import PGLockExporter

/// `EpisodeMetrics` on random ended episodes against a plain count: every bucket of
/// `pg_blocking_episode_duration_seconds` holds exactly the episodes at most its bound long, the
/// buckets never decrease, `+Inf` and `_count` are all of them, `_sum` their durations, and the
/// ended counters split them by `end`.
@Suite struct EpisodeMetricsPropertyTests {
    @Test func histogramAndEndCountersMatchAPlainCount() async throws {
        let ends = EpisodeRecord.End.allCases
        await propertyCheck(
            count: 500, input: Gen.double(in: 0...5000).array(of: 0...40), Gen.int(in: 0...3).array(of: 40),
            Gen.int(in: 0...2).array(of: 40)
        ) { durations, endIndexes, databaseIndexes in
            var metrics = EpisodeMetrics()
            var records: [EpisodeRecord] = []
            for (index, duration) in durations.enumerated() {
                let record = EpisodeRecord(
                    id: String(index), target: "t", datname: ["a", "b", "c"][databaseIndexes[index]],
                    startedAt: EpisodeRecord.Timestamp(microsecondsSinceEpoch: 0), durationSeconds: duration, ongoing: false,
                    end: ends[endIndexes[index]], root: EpisodeRecord.Root(pid: 1))
                metrics.started(record)
                metrics.ended(record)
                records.append(record)
            }
            var w = ExpositionWriter()
            metrics.write(into: &w, known: ["a"], ongoing: [])
            guard let exposition = try? Exposition(parsing: String(decoding: w.bytes, as: UTF8.self)) else {
                Issue.record("unparseable exposition")
                return
            }
            for datname in Set(records.map(\.datname)).union(["a"]) {
                let mine = records.filter { $0.datname == datname }
                #expect(exposition.value("pg_blocking_episodes_total", ["datname": datname]) == Double(mine.count))
                for end in ends {
                    #expect(exposition.value("pg_blocking_episodes_ended_total", ["datname": datname, "end": end.rawValue])
                            == Double(mine.filter { $0.end == end }.count))
                }
                for bound in EpisodeMetrics.durationBuckets {
                    #expect(exposition.value("pg_blocking_episode_duration_seconds_bucket", ["datname": datname, "le": ExpositionWriter.format(bound)])
                            == Double(mine.filter { $0.durationSeconds <= bound }.count))
                }
                #expect(exposition.value("pg_blocking_episode_duration_seconds_bucket", ["datname": datname, "le": "+Inf"]) == Double(mine.count))
                #expect(exposition.value("pg_blocking_episode_duration_seconds_count", ["datname": datname]) == Double(mine.count))
                let sum = exposition.value("pg_blocking_episode_duration_seconds_sum", ["datname": datname]) ?? .nan
                #expect(abs(sum - mine.map(\.durationSeconds).reduce(0, +)) <= 1e-6 * max(1, sum))
            }
        }
    }
}
