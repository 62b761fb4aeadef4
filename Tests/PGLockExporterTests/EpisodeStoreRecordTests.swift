import Foundation
import Testing

@testable import PGLockExporter

/// `EpisodeRecord`: the JSON keys the issue names, RFC 3339 times to the microsecond, the id.
@Suite struct EpisodeStoreRecordTests {
    typealias Timestamp = EpisodeRecord.Timestamp

    static func json(_ value: some Encodable) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try #require(JSONSerialization.jsonObject(with: encoder.encode(value)) as? [String: Any])
    }

    @Test func fullRecordHasTheIssuesKeys() throws {
        let object = try Self.json(EpisodeStoreFixtures.full())
        #expect(Set(object.keys) == [
            "id", "target", "datname", "started_at", "ended_at", "duration_seconds", "ongoing", "end", "end_cause",
            "root", "lock", "peak_blocked", "blocked_total", "max_depth", "max_wait_seconds", "waiter_seconds",
            "samples", "waiters", "guard",
        ])
        let root = try #require(object["root"] as? [String: Any])
        #expect(Set(root.keys) == [
            "pid", "backend_start", "usename", "application_name", "client_addr", "client_port", "backend_type",
            "state", "xact_start", "state_change", "query", "query_fingerprint", "query_reduced",
        ])
        #expect(Set(try #require(object["lock"] as? [String: Any]).keys) == ["locktype", "mode", "relation"])
        let waiters = try #require(object["waiters"] as? [[String: Any]])
        #expect(Set(waiters[0].keys) == [
            "pid", "usename", "application_name", "mode", "relation", "query", "waited_seconds", "is_migrate",
        ])
        #expect(waiters[0]["is_migrate"] as? Bool == true)
        #expect(Set(try #require(object["guard"] as? [String: Any]).keys) == [
            "idle_in_transaction_session_timeout", "transaction_timeout",
        ])
        #expect(object["started_at"] as? String == "2026-12-04T15:13:39.123456Z")
        #expect(object["ended_at"] as? String == "2026-12-04T15:13:43.373456Z")
        #expect(root["backend_start"] as? String == "2026-12-04T14:13:39.123456Z")
        #expect(object["end"] as? String == "root_ended")
    }

    /// An ongoing episode of a prepared transaction: what is not known is left out.
    @Test func exactJSONOfAnOngoingPreparedTransaction() throws {
        let root = EpisodeRecord.Root(gid: "tx-1")
        let record = EpisodeRecord(
            id: EpisodeRecord.id(target: "prod", root: root, startedAt: EpisodeStoreFixtures.base), target: "prod",
            datname: "app", startedAt: EpisodeStoreFixtures.base, root: root, peakBlocked: 1, blockedTotal: 1,
            maxDepth: 1, maxWaitSeconds: 0.5, waiterSeconds: 0.5, samples: 1,
            waiters: [EpisodeRecord.Waiter(pid: 7, waitedSeconds: 0.5)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(String(decoding: try encoder.encode(record), as: UTF8.self) == """
            {"blocked_total":1,"datname":"app","duration_seconds":0,"id":"\(record.id)","max_depth":1,\
            "max_wait_seconds":0.5,"ongoing":true,"peak_blocked":1,"root":{"gid":"tx-1"},"samples":1,\
            "started_at":"2026-12-04T15:13:39.123456Z","target":"prod","waiter_seconds":0.5,\
            "waiters":[{"is_migrate":false,"pid":7,"waited_seconds":0.5}]}
            """)
    }

    @Test func jsonRoundTripIsExact() throws {
        let record = EpisodeStoreFixtures.full()
        let data = try JSONEncoder().encode(record)
        #expect(try JSONDecoder().decode(EpisodeRecord.self, from: data) == record)
    }

    @Test func timestampsAreRFC3339ToTheMicrosecond() throws {
        #expect(EpisodeStoreFixtures.base.description == "2026-12-04T15:13:39.123456Z")
        #expect(Timestamp(microsecondsSinceEpoch: 0).description == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp(microsecondsSinceEpoch: -1).description == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamp(rfc3339: "2026-12-04T15:13:39.123456Z") == EpisodeStoreFixtures.base)
        #expect(Timestamp(rfc3339: "2026-12-04T16:13:39.123456+01:00") == EpisodeStoreFixtures.base)
        #expect(Timestamp(rfc3339: "2026-12-04T15:13:39Z")?.microsecondsSinceEpoch == 1_796_397_219_000_000)
        #expect(Timestamp(rfc3339: "2026-12-04 15:13:39") == nil)
        #expect(Timestamp(rfc3339: "yesterday") == nil)
        #expect(Timestamp(secondsSinceEpoch: 1_796_397_219.123456) == EpisodeStoreFixtures.base)
        #expect(Timestamp(secondsSinceEpoch: .nan) == nil)
        #expect(Timestamp(secondsSinceEpoch: .infinity) == nil)
        #expect(Timestamp(secondsSinceEpoch: 1e300) == nil)
        // Every microsecond of a day survives text and back.
        for micros in stride(from: Int64(0), to: 86_400_000_000, by: 86_400_000_000 / 9973) {
            let time = Timestamp(microsecondsSinceEpoch: EpisodeStoreFixtures.base.microsecondsSinceEpoch + micros)
            #expect(Timestamp(rfc3339: time.description) == time)
        }
    }

    @Test func badTimeInStoredJSONIsOneLine() throws {
        let data = Data(#""2026-12-04 15:13:39\n""#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Timestamp.self, from: data) }
    }

    /// The id: pinned (a change of scheme would orphan stored ids), the same for the same episode,
    /// different for another root, another `backend_start` of the same pid, another start, target.
    @Test func idIsStableAndTellsEpisodesApart() {
        let root = EpisodeRecord.Root(pid: 65365, backendStart: EpisodeStoreFixtures.at(-3600))
        let id = EpisodeRecord.id(target: "prod", root: root, startedAt: EpisodeStoreFixtures.base)
        #expect(id == "684f7fcbd4b3ead3")
        #expect(id.count == 16 && id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        var moreFields = root
        moreFields.state = "idle"
        moreFields.query = "SELECT 1"
        #expect(EpisodeRecord.id(target: "prod", root: moreFields, startedAt: EpisodeStoreFixtures.base) == id)
        var reused = root
        reused.backendStart = EpisodeStoreFixtures.at(-10)
        let others = [
            EpisodeRecord.id(target: "prod", root: reused, startedAt: EpisodeStoreFixtures.base),
            EpisodeRecord.id(target: "prod", root: root, startedAt: EpisodeStoreFixtures.at(0.000001)),
            EpisodeRecord.id(target: "staging", root: root, startedAt: EpisodeStoreFixtures.base),
            EpisodeRecord.id(target: "prod", root: EpisodeRecord.Root(pid: 65366, backendStart: root.backendStart), startedAt: EpisodeStoreFixtures.base),
            EpisodeRecord.id(target: "prod", root: EpisodeRecord.Root(gid: "65365"), startedAt: EpisodeStoreFixtures.base),
        ]
        #expect(Set(others + [id]).count == 6)
    }
}
