import Testing

@testable import PGLockExporter

/// Each rule of `EpisodeTracker` on constructed samples, with exact values.
@Suite struct EpisodeTrackerTests {
    static let t0 = EpisodeRecord.Timestamp(microsecondsSinceEpoch: 1_796_397_219_000_000)
    static func at(_ seconds: Double) -> EpisodeRecord.Timestamp {
        EpisodeRecord.Timestamp(microsecondsSinceEpoch: t0.microsecondsSinceEpoch + Int64(seconds * 1_000_000))
    }

    /// Root 10 (idle in transaction since `xact`), and waiters: pid → (blocker, wait seconds).
    static func sample(
        root: Bool = true, xact: String? = "2026-12-04 08:00:00+00", rootState: String = "idle in transaction",
        waiters: [Int32: (Int32, Double)] = [11: (10, 2)], waiterXact: String = "2026-12-04 08:00:05+00", waitersWaiting: Bool = true,
        killed: Double = 0, fatal: Double = 0, abandoned: Double = 0, roleTimeout: String? = nil
    ) -> ActivitySnapshot {
        var sessions: [Session] = []
        if root {
            var session = Session.fixture(
                pid: 10, applicationName: "worker", clientAddr: "10.0.0.5", state: rootState, transactionSeconds: 60,
                query: "SELECT * FROM features WHERE email = 'a@b.c'")
            session.transactionStart = xact
            sessions.append(session)
        }
        for (pid, (blocker, wait)) in waiters.sorted(by: { $0.key < $1.key }) {
            var session = Session.fixture(
                pid: pid, applicationName: pid == 12 ? ChildEnvironment.tagPrefix + "00ff" : "web", state: "active",
                waitingOnLock: waitersWaiting, blockedBy: waitersWaiting ? [blocker] : [], lockWaitSeconds: waitersWaiting ? wait : nil,
                backendStart: "2026-12-04 08:00:0\(pid % 10)+00", query: "ALTER TABLE features ADD COLUMN x int")
            session.transactionStart = waiterXact
            session.waitMode = "AccessExclusiveLock"
            session.waitLocktype = "relation"
            session.waitRelation = "features"
            sessions.append(session)
        }
        return ActivitySnapshot(
            serverVersion: 170000, sessions: sessions, locks: [],
            databases: [DatabaseStats(datname: "app", sessionsKilled: killed, sessionsAbandoned: abandoned, sessionsFatal: fatal)],
            settings: ServerSettings(
                versionString: "", maxConnections: 0,
                timeouts: ["idle_in_transaction_session_timeout": 0, "transaction_timeout": 0]),
            roleSettings: roleTimeout.map {
                [RoleSetting(datname: "app", rolname: "app", name: "idle_in_transaction_session_timeout", value: $0)]
            } ?? [])
    }

    static func observe(_ tracker: inout EpisodeTracker, _ snapshot: ActivitySnapshot, at seconds: Double) -> [EpisodeChange] {
        tracker.observe(snapshot, graph: BlockingGraph(sessions: snapshot.sessions), sentAt: at(seconds))
    }

    static func ended(_ changes: [EpisodeChange]) -> EpisodeRecord? {
        for change in changes { if case .ended(let record) = change { return record } }
        return nil
    }

    @Test func startsAtTheEarliestWaitAndRecordsTheRoot() throws {
        var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
        let changes = Self.observe(&tracker, Self.sample(waiters: [11: (10, 2), 12: (11, 0.5)]), at: 0)
        guard case .started(let record)? = changes.first, changes.count == 1 else { Issue.record("\(changes)"); return }
        #expect(record.startedAt == Self.at(-2))
        #expect(record.root.pid == 10)
        #expect(record.root.query == "SELECT * FROM features WHERE email = $1")
        #expect(record.root.clientAddr == "10.0.0.5")
        #expect(record.root.xactStart == EpisodeRecord.Timestamp(rfc3339: "2026-12-04T08:00:00Z"))
        #expect(record.lock == EpisodeRecord.Lock(locktype: "relation", mode: "AccessExclusiveLock", relation: "features"))
        #expect(record.peakBlocked == 2 && record.blockedTotal == 2 && record.maxDepth == 2)
        #expect(record.waiterSeconds == 2.5 && record.maxWaitSeconds == 2)
        #expect(record.waiters.map(\.pid) == [11, 12])
        #expect(record.waiters.map(\.isMigrate) == [false, true])
        #expect(record.guardTimeouts == EpisodeRecord.GuardTimeouts(idleInTransactionSessionTimeout: 0, transactionTimeout: 0))
        #expect(record.id == EpisodeRecord.id(target: "prod", root: record.root, startedAt: Self.at(-2)))
        // The next sample changes the counts: an update, same id.
        let next = Self.observe(&tracker, Self.sample(waiters: [11: (10, 3), 12: (11, 1.5), 13: (10, 0.2)]), at: 1)
        guard case .updated(let updated)? = next.first else { Issue.record("\(next)"); return }
        #expect(updated.id == record.id && updated.startedAt == record.startedAt)
        #expect(updated.peakBlocked == 3 && updated.blockedTotal == 3 && updated.samples == 2)
    }

    @Test(arguments: [
        // (the sample after, end, end_cause)
        ("commit", EpisodeRecord.End.released, nil as String?),
        ("waiters gave up", .waitersGone, nil),
        ("waiter got the lock", .released, nil),
        ("terminated", .rootEnded, "terminated (pg_terminate_backend, or a shutdown)"),
        ("timeout", .rootEnded, "idle_in_transaction_session_timeout (30s)"),
        ("client gone", .rootEnded, "client gone (the connection was lost without closing the session)"),
        ("closed", .rootEnded, "the client closed its session"),
    ])
    func endsAsTheServerShows(_ what: String, _ end: EpisodeRecord.End, _ cause: String?) throws {
        var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
        _ = Self.observe(&tracker, Self.sample(roleTimeout: "30s"), at: 0)
        let after: ActivitySnapshot
        switch what {
        case "commit": after = Self.sample(xact: nil, rootState: "idle", waiters: [:])
        case "waiters gave up": after = Self.sample(waiters: [:])
        case "waiter got the lock": after = Self.sample(waitersWaiting: false)
        case "terminated": after = Self.sample(root: false, waiters: [:], killed: 1)
        case "timeout": after = Self.sample(root: false, waiters: [:], fatal: 1, roleTimeout: "30s")
        case "client gone": after = Self.sample(root: false, waiters: [:], abandoned: 1)
        default: after = Self.sample(root: false, waiters: [:])
        }
        let record = try #require(Self.ended(Self.observe(&tracker, after, at: 1)))
        #expect(record.end == end, "\(what)")
        #expect(record.endCause == cause, "\(what)")
        #expect(record.endedAt == Self.at(1) && record.durationSeconds == 3 && !record.ongoing)
        #expect(tracker.ongoing.isEmpty)
    }

    @Test func aChainWhoseRootCommitsGivesASecondEpisode() throws {
        var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
        _ = Self.observe(&tracker, Self.sample(waiters: [11: (10, 2), 12: (11, 1)]), at: 0)
        // 10 committed; 11 got its lock and now blocks 12, which has waited 2 s by then.
        var after = Self.sample(xact: nil, rootState: "idle", waiters: [12: (11, 2)])
        var next = Session.fixture(pid: 11, state: "idle in transaction", backendStart: "2026-12-04 08:00:01+00")
        next.transactionStart = "2026-12-04 08:00:05+00"
        after.sessions.append(next)
        let changes = Self.observe(&tracker, after, at: 1)
        #expect(changes.count == 2)
        #expect(Self.ended(changes)?.end == .released)
        guard case .started(let second)? = changes.first(where: { if case .started = $0 { true } else { false } }) else {
            Issue.record("\(changes)")
            return
        }
        #expect(second.root.pid == 11 && second.startedAt == Self.at(-1))
    }

    @Test func aLossOfSightEndsNothingWithinTheGrace() throws {
        var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
        _ = Self.observe(&tracker, Self.sample(), at: 0)
        #expect(tracker.lostSight(at: Self.at(1)).isEmpty)
        #expect(tracker.lostSight(at: Self.at(9.9)).isEmpty)
        let blind = tracker.lostSight(at: Self.at(10))
        let record = try #require(Self.ended(blind))
        #expect(record.end == .unobserved && record.endedAt == Self.at(0) && record.durationSeconds == 2)
        // Found over after a gap: unobserved too, at the last sample that saw it.
        _ = Self.observe(&tracker, Self.sample(), at: 20)
        _ = tracker.lostSight(at: Self.at(21))
        let over = try #require(Self.ended(Self.observe(&tracker, Self.sample(root: false, waiters: [:], killed: 1), at: 22)))
        #expect(over.end == .unobserved && over.endedAt == Self.at(20) && over.endCause == nil)
    }

    @Test func aStatementCutMidLiteralLeaksNothing() throws {
        var tracker = EpisodeTracker(target: "prod", queryText: .normalized)
        var snapshot = Self.sample()
        let cut = "SELECT * FROM users WHERE email = 'a@b.c' OR note = '" + String(repeating: "secret ", count: 200)
        snapshot.sessions[0].query = String(cut.utf8.prefix(1023))!
        let changes = Self.observe(&tracker, snapshot, at: 0)
        guard case .started(let record)? = changes.first else { Issue.record("\(changes)"); return }
        let query = try #require(record.root.query)
        #expect(!query.contains("a@b.c") && !query.contains("secret"), "\(query)")
        #expect(record.root.queryReduced == true)
    }
}
