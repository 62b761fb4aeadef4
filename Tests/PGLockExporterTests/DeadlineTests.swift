import Testing

@testable import PGLockExporter

/// The pure parts of "every wait has a deadline": budgets, deadlines and failure reasons.
@Suite struct DeadlineTests {
    @Test func deadlinesCountDownAndClamp() {
        #expect(Deadline.after(seconds: -3).hasPassed)
        #expect(Deadline.after(seconds: .nan).hasPassed)
        let soon = Deadline.after(seconds: 1), later = Deadline.after(seconds: 5)
        #expect(!soon.hasPassed)
        #expect(soon.remainingSeconds <= 1 && soon.remainingSeconds > 0.9)
        #expect(later.capped(at: soon) == soon)
        #expect(soon.capped(at: later) == soon)
        #expect(soon.capped(at: nil) == soon)
        #expect(soon.pollMilliseconds <= 1000 && soon.pollMilliseconds > 900)
    }

    @Test func failuresGetOneBoundedReason() {
        #expect(CollectionFailure(PostgresError(kind: .timeout, message: "x")) == .timeout)
        #expect(CollectionFailure(PostgresError(kind: .query, sqlState: "57014", message: "canceling statement due to statement timeout")) == .timeout)
        #expect(CollectionFailure(PostgresError(kind: .query, sqlState: "55P03", message: "lock timeout")) == .timeout)
        #expect(CollectionFailure(PostgresError(kind: .authentication, message: "password authentication failed")) == .auth)
        #expect(CollectionFailure(PostgresError(kind: .connection, message: "connection refused")) == .connect)
        #expect(CollectionFailure(PostgresError(kind: .query, sqlState: "42501", message: "permission denied")) == .query)
        #expect(CollectionFailure.allCases.map(\.rawValue) == ["timeout", "connect", "auth", "query"])
    }

    @Test func theSamplerCountsByTheSnapshotsRules() {
        let sql = SamplerStatement().sql
        #expect(sql.contains(SessionRules.isBlocked("a")))
        #expect(sql.contains(SessionRules.isIdleInTransaction("a")))
        #expect(sql.contains(SessionRules.isClient("a")))
        #expect(SessionsStatement(queryCharacters: 0, identity: false).sql.contains(SessionRules.waitsOnLock("a")))
    }

    @Test func serversOlderThan14AreRefusedInOneLine() throws {
        let error = #expect(throws: PostgresError.self) { try SnapshotBatch.requireSupported(130012) }
        #expect(error?.description == "PostgreSQL 13 is not supported: pg_lock_exporter needs PostgreSQL 14 or newer")
        try SnapshotBatch.requireSupported(140000)
        try SnapshotBatch.requireSupported(180001)
    }
}
