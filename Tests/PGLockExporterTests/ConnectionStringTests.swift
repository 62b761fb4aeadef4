import Testing

@testable import PGLockExporter

@Suite struct ConnectionStringTests {
    @Test func redactsPasswordInKeyValueForm() {
        let shown = ConnectionString.redacted("host=db.internal port=5433 user=monitor password=hunter2 dbname=app")
        #expect(shown == "user=monitor dbname=app host=db.internal port=5433")
        #expect(!shown.contains("hunter2"))
    }

    @Test func redactsPasswordInURIForm() {
        let shown = ConnectionString.redacted("postgresql://monitor:hunter2@db.internal:5433/app?sslmode=require")
        #expect(!shown.contains("hunter2"))
        #expect(shown == "user=monitor dbname=app host=db.internal port=5433 sslmode=require")
    }

    @Test func emptyMeansLibpqDefaults() {
        #expect(ConnectionString.redacted("") == "<libpq defaults>")
    }

    @Test func invalidStringErrorNeverEchoesItsFragments() throws {
        let error = #expect(throws: PostgresError.self) {
            try ConnectionString.validate("host=db password hunter2")
        }
        #expect(error?.message.contains("hunter2") == false)
        #expect(error?.message.hasPrefix("invalid connection string:") == true)
        #expect(ConnectionString.redacted("host=db password hunter2") == "<invalid connection string>")
    }

    @Test func aQuoteInsideTheInputCannotShiftTheScrubbing() {
        let error = #expect(throws: PostgresError.self) { try ConnectionString.validate("host=db password=abc def\"ghi") }
        #expect(error?.message.contains("ghi") == false)
        #expect(error?.message.contains("def") == false)
    }

    @Test func unknownKeywordIsNamed() {
        let error = #expect(throws: PostgresError.self) { try ConnectionString.validate("hots=db") }
        #expect(error?.message == "invalid connection string: invalid connection option \"…\"")
    }
}
