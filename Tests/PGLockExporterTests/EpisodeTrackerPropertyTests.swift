import PropertyBased
import Testing

@testable import PGLockExporter

/// `EpisodeTracker` on random sequences of lock graphs (cycles, chains whose root changes, roots
/// that vanish, failed samples), against `GraphOracle`'s roots and the record's own rules.
@Suite struct EpisodeTrackerPropertyTests {
    /// Per sample: for each of pids 1…6, the pids it waits on (0 = none; 7…9 = no such session).
    static let samples = Gen.int(in: 0...9).array(of: 0...2).array(of: 6).array(of: 1...8)
    /// Per sample: 0 = the sample failed, 1 = pid 1 is gone, anything else = all six are there.
    static let events = Gen.int(in: 0...6).array(of: 8)

    static let t0 = EpisodeRecord.Timestamp(microsecondsSinceEpoch: 1_796_397_219_000_000)

    /// Samples are 1 s apart and every wait is shorter (0.25 to 0.75 s), as on a real server: a
    /// wait seen at one sample began after the one before.
    static func snapshot(_ waits: [[Int]], sample: Int, without gone: Set<Int32>) -> ActivitySnapshot {
        let sessions = (1...6).compactMap { pid -> Session? in
            guard !gone.contains(Int32(pid)) else { return nil }
            let blockers = waits[pid - 1].filter { $0 > 0 && $0 != pid }.map(Int32.init)
            var session = Session.fixture(
                pid: Int32(pid), state: blockers.isEmpty ? "idle in transaction" : "active", transactionSeconds: 5,
                waitingOnLock: !blockers.isEmpty, blockedBy: blockers, lockWaitSeconds: blockers.isEmpty ? nil : 0.25 * Double(sample % 3 + 1),
                backendStart: "2026-12-04 08:00:0\(pid)+00", query: "SELECT * FROM t WHERE secret = 'literal-\(pid)'")
            session.transactionStart = "2026-12-04 08:01:0\(pid)+00"
            return session
        }
        return ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [DatabaseStats(datname: "app")],
            settings: ServerSettings(versionString: "", maxConnections: 0, timeouts: [:]))
    }

    @Test(.shrinking) func episodesFollowTheRootsOfEachSample() async {
        await propertyCheck(count: 300, input: Self.samples, Self.events) { samples, events in
            var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
            var started = Set<String>()
            var ended = Set<String>()
            var blind = false
            for (index, waits) in samples.enumerated() {
                let sentAt = EpisodeRecord.Timestamp(microsecondsSinceEpoch: Self.t0.microsecondsSinceEpoch + Int64(index) * 1_000_000)
                let changes: [EpisodeChange]
                let event = events[index % events.count]
                if event == 0 {
                    changes = tracker.lostSight(at: sentAt)
                    #expect(changes.isEmpty, "a failed sample ends nothing within the grace")
                    blind = true
                } else {
                    let snapshot = Self.snapshot(waits, sample: index, without: event == 1 ? [1] : [])
                    changes = tracker.observe(snapshot, graph: BlockingGraph(sessions: snapshot.sessions), sentAt: sentAt)
                    let oracle = GraphOracle(sessions: snapshot.sessions)
                    let present = Set(snapshot.sessions.map(\.pid))
                    let expected = Set(oracle.roots.filter { !oracle.reach($0).isEmpty && present.contains($0) })
                    #expect(Set(tracker.ongoing.compactMap(\.root.pid)) == expected, "sample \(index)")
                    for change in changes {
                        if case .ended(let record) = change, blind { #expect(record.end == .unobserved) }
                    }
                    blind = false
                }
                for change in changes {
                    switch change {
                    case .started(let record):
                        #expect(started.insert(record.id).inserted, "started twice: \(record.id)")
                        #expect(record.ongoing && record.end == nil)
                        #expect(record.startedAt <= sentAt)
                    case .updated(let record):
                        #expect(started.contains(record.id) && !ended.contains(record.id))
                    case .ended(let record):
                        #expect(started.contains(record.id) && ended.insert(record.id).inserted, "ended twice: \(record.id)")
                        #expect(!record.ongoing && record.end != nil)
                        let end = record.endedAt ?? record.startedAt
                        #expect(record.startedAt <= end)
                        #expect(abs(record.durationSeconds - EpisodeTracker.seconds(from: record.startedAt, to: end)) < 1e-6)
                    }
                    let record = { switch change { case .started(let r), .updated(let r), .ended(let r): r } }()
                    #expect(record.blockedTotal >= record.peakBlocked && record.peakBlocked >= 1)
                    #expect(record.waiters.count <= min(EpisodeRecord.maximumWaiters, record.blockedTotal))
                    #expect(record.maxDepth >= 1 && record.samples >= 1)
                    #expect(record.root.query == "SELECT * FROM t WHERE secret = $1")
                    #expect(!record.waiters.contains { $0.query?.contains("literal") == true })
                }
            }
            let stopped = tracker.stop(at: Self.t0)
            #expect(stopped.allSatisfy { if case .ended(let r) = $0 { r.end == .unobserved } else { false } })
            #expect(tracker.ongoing.isEmpty)
        }
    }
}
