import Foundation
import Testing

@testable import PGLockExporter

extension IntegrationTests {
    /// Issue 19: only a decision the policy made, carrying a `GuardedTermination`, is carried out.
    @Suite struct RemediatorIdentityIntegrationTests {
        let cluster: TestCluster
        init() throws { cluster = try TestCluster.get() }

        func alive(_ pid: Int32) throws -> Bool {
            try cluster.connect().execute("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", [String(pid)]) { $0.int(0, 0)! } == 1
        }

        /// Failed before the fix: the hand-made decision was carried out (`result` terminated)
        /// and the holder's session ended: the remediator signalled whatever pid a decision named.
        @Test func aTerminateDecisionThePolicyDidNotMakeIsNeverCarriedOut() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let connection = try cluster.connect(database: incident.database)
            let snapshot = try connection.readSnapshot(statementTimeoutMilliseconds: 5000)
            let holder = try #require(snapshot.sessions.first { $0.pid == incident.holderPID })
            var decisions = [
                Decision(pid: holder.pid, session: holder, blockedSessions: 2, action: .terminate, code: .rootBlocker, reason: "hand-made")
            ]
            Remediator(policy: RemediationPolicy(), execute: true).carryOut(&decisions, on: connection)
            #expect(decisions.map(\.result) == [.failed])
            #expect(decisions.map(\.code) == [.unknownIdentity])
            #expect(try alive(incident.holderPID))
        }

        /// The policy's own decision carries the identity and is carried out; the same decision
        /// replayed against a new session with the old pid's identity finds no row.
        @Test func thePolicysDecisionTerminatesOnlyTheBackendItNamed() throws {
            let incident = try Incident(cluster: cluster, readers: 1)
            defer { incident.end() }
            let connection = try cluster.connect(database: incident.database)
            var policy = RemediationPolicy()
            policy.minIdleSeconds = 0
            let remediator = Remediator(policy: policy, execute: true)
            var decisions = try remediator.plan(on: connection)
            #expect(decisions.map(\.pid) == [incident.holderPID])
            let termination = try #require(decisions.first?.termination)
            #expect(termination.backend.pid == incident.holderPID)
            #expect(termination.state == "idle in transaction")
            var replay = decisions
            remediator.carryOut(&decisions, on: connection)
            #expect(decisions.map(\.result) == [.terminated])
            try eventually("the holder gone") { try !alive(incident.holderPID) }
            remediator.carryOut(&replay, on: connection)
            #expect(replay.map(\.result) == [.skipped])
            #expect(replay.map(\.code) == [.stateChanged])
        }
    }
}
