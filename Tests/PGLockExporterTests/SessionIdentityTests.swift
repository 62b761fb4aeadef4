import Testing

@testable import PGLockExporter

/// Issue 19: only a client backend named by pid and `backend_start` can reach a statement that
/// signals a backend.
@Suite struct SessionIdentityTests {
    let prepared = Session(standingFor: PreparedTransaction(gid: "deploy-7", datname: "app", owner: "app", ageSeconds: 60), index: 2)

    @Test func eachKindOfRowHasItsOwnIdentity() {
        let client = Session.fixture(pid: 42, backendStart: "2026-12-04 08:00:00+00")
        #expect(client.identity == .clientBackend(ClientBackendIdentity(pid: 42, backendStart: "2026-12-04 08:00:00+00", backendType: "client backend")!))
        #expect(prepared.pid == -3)
        #expect(prepared.identity == .preparedTransaction(gid: "deploy-7"))
        #expect(Session.fixture(pid: 0).identity == .unnamedPreparedTransaction)
        #expect(Session.fixture(pid: 7, backendType: "autovacuum worker").identity == .backgroundProcess(pid: 7, backendType: "autovacuum worker"))
        // Without pg_read_all_stats: no type, no state, no start.
        let hidden = Session.fixture(pid: 8, backendType: nil, state: nil, backendStart: nil)
        #expect(hidden.isClient)
        #expect(hidden.identity == .unknown(pid: 8))
        #expect(Session.fixture(pid: 9, backendStart: nil).identity == .unknown(pid: 9))
    }

    @Test func noPidBelowOneNoBackgroundProcessAndNoHiddenRowIsEverAClientBackend() {
        for pid: Int32 in [0, -1, -3, Int32.min] {
            #expect(ClientBackendIdentity(pid: pid, backendStart: "2026-12-04 08:00:00+00", backendType: "client backend") == nil)
        }
        #expect(ClientBackendIdentity(pid: 5, backendStart: "", backendType: "client backend") == nil)
        #expect(ClientBackendIdentity(pid: 5, backendStart: nil, backendType: "client backend") == nil)
        #expect(ClientBackendIdentity(pid: 5, backendStart: "2026-12-04 08:00:00+00", backendType: "walsender") == nil)
        #expect(ClientBackendIdentity(pid: 5, backendStart: "2026-12-04 08:00:00+00", backendType: nil) == nil)
        #expect(prepared.clientBackendIdentity == nil)
        // A prepared transaction's row with a client's type and a start still is none.
        var forged = prepared
        forged.backendType = "client backend"
        forged.backendStart = "2026-12-04 08:00:00+00"
        forged.pid = 12
        #expect(forged.clientBackendIdentity == nil)
        #expect(GuardedTermination(session: forged) == nil)
    }

    @Test func aTerminationCarriesTheIdentityAndTheStateThatJustifiedIt() throws {
        let s = Session.fixture(
            pid: 42, state: "idle in transaction", backendStart: "2026-12-04 08:00:00+00", stateChange: "2026-12-04 08:00:09+00")
        let termination = try #require(GuardedTermination(session: s))
        #expect(termination.parameters == ["42", "2026-12-04 08:00:00+00", "idle in transaction", "2026-12-04 08:00:09+00"])
        #expect(GuardedTermination.sql.contains("a.pid = $1::int AND a.backend_start = $2::timestamptz AND a.backend_type = 'client backend'"))
        #expect(GuardedTermination(session: Session.fixture(pid: 42, stateChange: nil)) == nil)
    }

    /// The policy never decides to terminate what it cannot name: a root whose start time could
    /// not be read is skipped as `identity_unknown` (before, it was planned and failed later).
    @Test func aRootWithoutAStartTimeIsNotPlanned() {
        let sessions = [
            Session.fixture(pid: 10, state: "idle in transaction", stateSeconds: 900, backendStart: nil),
            Session.fixture(pid: 20, state: "active", waitingOnLock: true, blockedBy: [10]),
        ]
        let snapshot = ActivitySnapshot(
            serverVersion: 150000, sessions: sessions, locks: [], databases: [],
            settings: ServerSettings(versionString: "15", maxConnections: 100, timeouts: [:]))
        let decisions = RemediationPolicy().decide(snapshot: snapshot, graph: BlockingGraph(sessions: sessions), ownPID: 99)
        #expect(decisions.map(\.action) == [.skip])
        #expect(decisions.map(\.code) == [.unknownIdentity])
        #expect(decisions[0].termination == nil)
    }
}
