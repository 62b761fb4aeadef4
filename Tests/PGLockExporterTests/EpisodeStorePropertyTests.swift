import PropertyBased
import Testing

@testable import PGLockExporter

/// Retention on random stores: `prune(olderThan: t, keepAtMost: n)` leaves exactly the newest
/// `n` of the episodes that started at or after `t`, in `episodes()`'s order.
@Suite struct EpisodeStorePropertyTests {
    typealias F = EpisodeStoreFixtures

    /// Episodes as (start second, ongoing): starts from a small range, so several share one and
    /// the order falls back to the id.
    static let episodes = zip(Gen.int(in: 0...15), Gen.bool).array(of: 0...30)
    /// t as a second (or none), n (or none; negative keeps none).
    static let bounds = zip(Gen.int(in: -1...17).map { $0 < 0 ? nil : $0 }, Gen.int(in: -2...35).map { $0 > 32 ? nil : $0 })

    @Test(.shrinking) func pruneKeepsExactlyTheNewestWithinTheAge() async throws {
        await propertyCheck(count: 400, input: Self.episodes, Self.bounds) { specs, bounds in
            let (olderThan, keepAtMost) = bounds
            let store = try EpisodeStore.open(path: ":memory:")
            let records = specs.enumerated().map { index, spec in
                F.record(pid: Int32(index + 1), start: Double(spec.0), length: spec.1 ? nil : 2)
            }
            for record in records { try store.upsert(record) }
            let deleted = try store.prune(olderThan: olderThan.map { F.at(Double($0)) }, keepAtMost: keepAtMost)

            let oracle = Array(records
                .filter { olderThan == nil || $0.startedAt >= F.at(Double(olderThan!)) }
                .sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
                .prefix(keepAtMost.map { max(0, $0) } ?? Int.max))
            let kept = try store.episodes(limit: 1000)
            #expect(kept.map(\.id) == oracle.map(\.id))
            #expect(kept == oracle)
            #expect(deleted == records.count - oracle.count)
        }
    }
}
