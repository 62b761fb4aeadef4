import PropertyBased
import Testing

@testable import PGLockExporter

/// Issue 19: on random snapshots and random policies, `remediate` never picks a non-root, a
/// session that is not a client backend, a prepared transaction, its own session, a waiting
/// session, a session it cannot name, an excluded one, or more than the cap.
@Suite struct RemediationPolicyPropertyTests {
    static let own: Int32 = 5

    /// Session i (pid i + 1) of kind: 0 idle in transaction, 1 idle in transaction for 1 s,
    /// 2 active, 3 waiting on its blockers, 4 autovacuum worker, 5 hidden from us, 6 idle in
    /// transaction without a readable start, 7 a prepared transaction's row (negative pid).
    /// Names come from small pools so that exclusions hit.
    static func sessions(_ specs: [(kind: Int, names: Int, blockers: [Int])]) -> [Session] {
        let apps = ["worker", "pg_dump", "web", ""], users = ["app", "admin", "etl"], databases = ["app", "billing"]
        return specs.enumerated().map { i, spec in
            let pid = Int32(i + 1)
            var s = Session.fixture(
                pid: pid, datname: databases[spec.names % 2], usename: users[spec.names % 3],
                applicationName: apps[spec.names % 4], state: spec.kind == 2 ? "active" : "idle in transaction",
                stateSeconds: spec.kind == 1 ? 1 : 600)
            switch spec.kind {
            case 3:
                s.state = "active"
                s.waitingOnLock = true
                s.blockedBy = spec.blockers.map { $0 < specs.count ? Int32($0 + 1) : 0 }
            case 4: s.backendType = "autovacuum worker"
            case 5: (s.backendType, s.state, s.backendStart, s.stateChange) = (nil, nil, nil, nil)
            case 6: s.backendStart = nil
            case 7:
                s = Session(
                    standingFor: PreparedTransaction(gid: "gid-\(i)", datname: databases[spec.names % 2], owner: "app", ageSeconds: 600),
                    index: i)
            default: break
            }
            return s
        }
    }

    static let specs = zip(Gen.int(in: 0...7), Gen.int(in: 0...11), Gen.int(in: 0...9).array(of: 0...3)).array(of: 1...10)
    /// allIdleInTransaction, a database, exclusions (application, user, database, only-database),
    /// the cap, a named pid (0 = none) with or without force, skipped pids.
    static let policies = zip(Gen.bool, Gen.int(in: 0...2), Gen.int(in: 0...15), Gen.int(in: 0...3), Gen.int(in: 0...11), Gen.bool, Gen.int(in: 0...10))

    @Test(.shrinking) func neverPicksWhatItMustNot() async throws {
        let pgDump = try RemediationPolicy.Pattern("pg_.*"), admin = try RemediationPolicy.Pattern("admin")
        let billing = try RemediationPolicy.Pattern("billing"), app = try RemediationPolicy.Pattern("app")
        await propertyCheck(count: 500, input: Self.specs, Self.policies) { specs, options in
            let (allIdle, databaseChoice, exclusions, cap, named, force, skip) = options
            let sessions = Self.sessions(specs.map { (kind: $0.0, names: $0.1, blockers: $0.2) })
            var policy = RemediationPolicy()
            policy.allIdleInTransaction = allIdle
            policy.database = [nil, "app", "billing"][databaseChoice]
            if exclusions & 1 != 0 { policy.excludeApplications = [pgDump] }
            if exclusions & 2 != 0 { policy.excludeUsers = [admin] }
            if exclusions & 4 != 0 { policy.excludeDatabases = [billing] }
            if exclusions & 8 != 0 { policy.onlyDatabases = [app] }
            policy.maxTerminations = cap
            policy.minIdleSeconds = 60
            policy.pid = named == 0 ? nil : Int32(named)
            policy.force = force
            let skipping: Set<Int32> = skip == 0 ? [] : [Int32(skip)]
            let snapshot = ActivitySnapshot(
                serverVersion: 150000, sessions: sessions, locks: [], databases: [],
                settings: ServerSettings(versionString: "15", maxConnections: 100, timeouts: [:]))
            let graph = BlockingGraph(sessions: sessions)
            let decisions = policy.decide(snapshot: snapshot, graph: graph, ownPID: Self.own, skipping: skipping)

            let oracle = GraphOracle(sessions: sessions)
            let terminated = decisions.filter { $0.action == .terminate }
            #expect(terminated.count <= cap)
            #expect(Set(decisions.map(\.pid)).count == decisions.count)
            for decision in decisions {
                #expect(!skipping.contains(decision.pid))
                guard decision.action == .terminate else {
                    #expect(decision.termination == nil)
                    continue
                }
                let session = try #require(sessions.first { $0.pid == decision.pid })
                if let named = policy.pid {
                    #expect(decision.pid == named)
                } else if !allIdle {
                    #expect(oracle.roots.contains(decision.pid), "a non-root \(decision.pid)")
                    #expect(!oracle.reach(decision.pid).isEmpty)
                }
                guard case .clientBackend(let identity) = session.identity else {
                    Issue.record("not a client backend: \(session.identity)")
                    continue
                }
                #expect(decision.termination?.backend == identity)
                #expect(decision.pid > 0 && decision.pid != Self.own)
                #expect(!session.isPreparedTransaction && !session.isHidden && !session.waitingOnLock)
                #expect(!pgDump.matches(session.applicationName) || exclusions & 1 == 0)
                #expect(!admin.matches(session.usename ?? "") || exclusions & 2 == 0)
                #expect(!billing.matches(session.datname ?? "") || exclusions & 4 == 0)
                #expect(app.matches(session.datname ?? "") || exclusions & 8 == 0)
                #expect(policy.database == nil || session.datname == policy.database)
                if !(policy.pid != nil && force) {
                    #expect(session.isIdleInTransaction)
                }
                if policy.pid == nil { #expect((session.stateSeconds ?? 0) >= 60) }
            }
            // Past the cap, nothing more is picked: every candidate after the cap-th termination
            // is skipped as cap_reached or for its own reason.
            if let last = decisions.lastIndex(where: { $0.action == .terminate }), terminated.count == cap {
                #expect(decisions[(last + 1)...].allSatisfy { $0.action == .skip })
            }
        }
    }
}
