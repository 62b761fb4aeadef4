import Foundation
import Testing

@testable import PGLockExporter

@Suite struct BlockingReportTests {
    func snapshot(_ sessions: [Session]) -> ActivitySnapshot {
        ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [],
            settings: ServerSettings(versionString: "15", maxConnections: 100, timeouts: [:]))
    }

    /// Failed before the fix: the test process died with signal 11 (stack overflow) building
    /// the report of a 1,000-session chain: the tree was built, encoded and drawn by recursion,
    /// one level per session.
    @Test func aChainOfTenThousandSessionsIsDrawnCutAtSixtyFourLevels() throws {
        var sessions = [Session.fixture(pid: 1, state: "idle in transaction")]
        for pid in Int32(2)...Int32(10_000) {
            sessions.append(Session.fixture(pid: pid, state: "active", waitingOnLock: true, blockedBy: [pid - 1]))
        }
        let report = BlockingReport(snapshot: snapshot(sessions), graph: BlockingGraph(sessions: sessions))
        let tree = try #require(report.blockingTrees.first)
        #expect(tree.blockedCount == 9_999)
        #expect(tree.chainDepth == 9_999)
        var node = tree, levels = 0
        while let child = node.blocked.first {
            node = child
            levels += 1
        }
        #expect(levels == BlockingReport.maxTreeDepth)
        #expect(node.pid == 65)
        #expect(node.truncated == true)
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"truncated\":true"))
        let text = BlockingReportText(report, color: false).render()
        #expect(text.contains("… more sessions wait below: the tree is drawn 64 levels deep"))
        #expect(text.split(separator: "\n").count < 200)
    }

    /// A deadlock nobody outside holds up: no tree, but neither "No session is blocked." (as
    /// the text said before, under a header counting 3 blocked); the cycle is named instead.
    @Test func aPureDeadlockIsNamedNotCalledUnblocked() throws {
        let sessions = [
            Session.fixture(pid: 1, state: "active", waitingOnLock: true, blockedBy: [2]),
            Session.fixture(pid: 2, state: "active", waitingOnLock: true, blockedBy: [1]),
            Session.fixture(pid: 3, state: "active", waitingOnLock: true, blockedBy: [2]),
        ]
        let report = BlockingReport(snapshot: snapshot(sessions), graph: BlockingGraph(sessions: sessions))
        #expect(report.blockingTrees.isEmpty)
        #expect(report.cycles == [[1, 2]])
        #expect(report.server.blockedSessions == 3)
        let text = BlockingReportText(report, color: false).render()
        #expect(!text.contains("No session is blocked."))
        #expect(text.contains("Sessions waiting on one another: pids 1, 2\n   a deadlock PostgreSQL has not broken yet: it ends one of them after deadlock_timeout"))
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"cycles\":[[1,2]]"))
        #expect(BlockingReport(snapshot: snapshot(sessions), graph: BlockingGraph(sessions: sessions), database: "other").cycles.isEmpty)
    }
}
