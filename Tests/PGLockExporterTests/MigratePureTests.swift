import Testing

@testable import PGLockExporter

#if canImport(Glibc)
import Glibc
#endif

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(retries: 10, baseDelaySeconds: 1, maxDelaySeconds: 30, maxDurationSeconds: 900)

    @Test func ceilingDoublesUpToTheCap() {
        #expect((1...7).map { policy.delayCeiling(beforeRetry: $0) } == [1, 2, 4, 8, 16, 30, 30])
        #expect(policy.delayCeiling(beforeRetry: 500) == 30)
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        #expect(policy.next(afterAttempt: 3, elapsed: 10, unit: 0) == .success(0))
        #expect(policy.next(afterAttempt: 3, elapsed: 10, unit: 0.5) == .success(2))
        #expect(policy.next(afterAttempt: 3, elapsed: 10, unit: 0.999) == .success(4 * 0.999))
    }

    @Test func attemptsRunOut() {
        // 10 retries: after the 11th attempt there is no 12th.
        #expect(policy.next(afterAttempt: 10, elapsed: 10, unit: 0.5) == .success(15))
        #expect(policy.next(afterAttempt: 11, elapsed: 10, unit: 0.5) == .failure(.attemptsExhausted))
        let none = RetryPolicy(retries: 0)
        #expect(none.next(afterAttempt: 1, elapsed: 0, unit: 0.5) == .failure(.attemptsExhausted))
    }

    @Test func theDelayNeverRunsPastTheTotalDuration() {
        let short = RetryPolicy(retries: 10, baseDelaySeconds: 8, maxDelaySeconds: 30, maxDurationSeconds: 20)
        #expect(short.next(afterAttempt: 2, elapsed: 18, unit: 0.9) == .success(2))
        #expect(short.next(afterAttempt: 2, elapsed: 20, unit: 0.9) == .failure(.durationExhausted))
        #expect(short.next(afterAttempt: 2, elapsed: 25, unit: 0) == .failure(.durationExhausted))
    }
}

@Suite struct LockFailureClassifierTests {
    @Test func successIsSuccessWhateverWasSeen() {
        #expect(
            LockFailureClassifier.classify(exitStatus: 0, cancelledLockWait: true, sawLockWaitBeforeExit: true, outputMarker: "55P03")
                == .succeeded)
    }

    @Test func eachSignOfALockFailure() {
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: true, sawLockWaitBeforeExit: false, outputMarker: nil)
                == .lockFailure("the watchdog cancelled its lock wait"))
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, sawLockWaitBeforeExit: false, outputMarker: "55P03")
                == .lockFailure("its output says \"55P03\""))
        #expect(
            LockFailureClassifier.classify(exitStatus: 3, cancelledLockWait: false, sawLockWaitBeforeExit: true, outputMarker: nil)
                == .lockFailure("it was waiting on a lock just before it exited"))
    }

    @Test func anyOtherFailureIsNotRetried() {
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, sawLockWaitBeforeExit: false, outputMarker: nil)
                == .otherFailure)
    }

    func scan(_ chunks: [String]) -> String? {
        var scanner = LockFailureScanner()
        for chunk in chunks { scanner.feed(Array(chunk.utf8)) }
        return scanner.marker
    }

    @Test func scannerFindsEachTextInAnyCase() {
        #expect(scan(["ERROR:  canceling statement due to lock timeout\n"]) == "canceling statement due to lock timeout")
        #expect(scan(["psycopg2.errors.LockNotAvailable: ... (SQLSTATE 55p03)"]) == "55P03")
        #expect(scan(["ERROR: Could Not Obtain Lock on relation \"features\""]) == "could not obtain lock")
        #expect(scan(["sqlalchemy.exc.ProgrammingError: column \"x\" does not exist\n", "SQLSTATE 42703\n"]) == nil)
    }

    @Test func scannerFindsATextSplitAcrossChunks() {
        #expect(scan(["ERROR:  canceling statement du", "e to lock timeout"]) == "canceling statement due to lock timeout")
        #expect(scan(["...55", "P03"]) == "55P03")
        #expect(scan(["could not ", "obt", "ain lock"]) == "could not obtain lock")
    }
}

@Suite struct ChildEnvironmentTests {
    @Test func lockTimeoutIsAppendedAfterTheUsersOptions() {
        #expect(ChildEnvironment.pgOptions(existing: nil, lockTimeoutMilliseconds: 500, statementTimeoutMilliseconds: nil)
            == "-c lock_timeout=500")
        #expect(ChildEnvironment.pgOptions(existing: "  -c search_path=app ", lockTimeoutMilliseconds: 500, statementTimeoutMilliseconds: 60000)
            == "-c search_path=app -c lock_timeout=500 -c statement_timeout=60000")
        // The user's own lock_timeout stays, but ours comes later and wins.
        #expect(ChildEnvironment.pgOptions(existing: "-c lock_timeout=0", lockTimeoutMilliseconds: 2000, statementTimeoutMilliseconds: nil)
            == "-c lock_timeout=0 -c lock_timeout=2000")
    }

    @Test func tagIsSetUnlessTheUserSetPGAPPNAME() {
        let (env, tag) = ChildEnvironment.make(
            parent: ["PATH": "/bin", "PGOPTIONS": ""], tag: "pg_lock_exporter migrate 7", lockTimeoutMilliseconds: 1000,
            statementTimeoutMilliseconds: nil)
        #expect(env == ["PATH": "/bin", "PGOPTIONS": "-c lock_timeout=1000", "PGAPPNAME": "pg_lock_exporter migrate 7"])
        #expect(tag == "pg_lock_exporter migrate 7")

        let (own, none) = ChildEnvironment.make(
            parent: ["PGAPPNAME": "deploy"], tag: "pg_lock_exporter migrate 7", lockTimeoutMilliseconds: 1000,
            statementTimeoutMilliseconds: nil)
        #expect(own["PGAPPNAME"] == "deploy")
        #expect(none == nil)
    }
}

@Suite struct ProcessTreePortsTests {
    @Test func procNetTCPRowsMapInodesToLocalPorts() {
        let text = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 31337 1 0000000000000000 100 0 0 10 0
               1: 0100007F:D431 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 20 4 30 10 -1
               2: 0100007F:D432 0100007F:1538 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0000000000000000
            """
        #expect(ProcessTreePorts.localPorts(procNetTCP: text) == [31337: 5432, 424242: 54321])
    }

    @Test func procNetTCP6Rows() {
        let text = """
              sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:1538 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 0 10 -1
            """
        #expect(ProcessTreePorts.localPorts(procNetTCP: text) == [777: 50000])
    }

    @Test func parentPIDSurvivesOddCommandNames() {
        #expect(ProcessTreePorts.parentPID(procStat: "4242 (python3) S 4200 4242 4200 0 -1 4194560") == 4200)
        #expect(ProcessTreePorts.parentPID(procStat: "17 (a) b (c)) R 9 17 17 0") == 9)
        #expect(ProcessTreePorts.parentPID(procStat: "garbage") == nil)
    }

    @Test func descendantsWalkTheWholeTree() {
        let parents: [pid_t: pid_t] = [10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20]
        #expect(Set(ProcessTreePorts.descendants(of: 10, parents: parents)) == [10, 11, 12, 13])
        #expect(ProcessTreePorts.descendants(of: 99, parents: parents) == [99])
    }

    @Test func ourOwnSocketIsFound() throws {
        // A socket listening on a port of its own of this test process must show up among its own ports.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(fd, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        var tree = ProcessTreePorts()
        #expect(tree.clientPorts(of: getpid()).contains(port))
        #expect(tree.clientPorts(of: getpid()).contains(port))  // the second look, from what it remembers
    }
}

@Suite struct MigrationCommandTextTests {
    @Test func commandIsShownAsAShellWouldReadIt() {
        #expect(CommandText.shown(["alembic", "-c", "deploy/alembic.ini", "upgrade", "head"])
            == "alembic -c deploy/alembic.ini upgrade head")
        #expect(CommandText.shown(["psql", "-c", "ALTER TABLE t ADD c text", "it's", ""])
            == "psql -c 'ALTER TABLE t ADD c text' 'it'\\''s' ''")
    }

    @Test func passwordsAreNeverShown() {
        #expect(CommandText.shown(["psql", "postgresql://app:s3cret@db:5432/app?sslmode=require"])
            == "psql 'postgresql://app:…@db:5432/app?sslmode=require'")
        #expect(CommandText.shown(["psql", "host=db user=app password=s3cret dbname=app"])
            == "psql 'host=db user=app password=… dbname=app'")
        #expect(CommandText.shown(["psql", "host=db password='s3 cret' dbname=app"]) == "psql 'host=db password=… dbname=app'")
        #expect(CommandText.shown(["flyway", "-url=jdbc:postgresql://db/app?user=app&password=s3cret&ssl=true", "-password=s3cret", "migrate"])
            == "flyway '-url=jdbc:postgresql://db/app?user=app&password=…&ssl=true' -password=… migrate")
        #expect(CommandText.shown(["env", "PGPASSWORD=s3cret", "liquibase", "--password", "s3cret", "update"])
            == "env PGPASSWORD=… liquibase --password … update")
        #expect(!CommandText.shown(["a", "postgres://u:p%40ss@h/d"]).contains("p%40ss"))
    }
}

@Suite struct MigrationDurationTextTests {
    @Test func tenthsBelowTenSeconds() {
        #expect([0.25, 1, 1.5, 1.04, 9.96, 12.4, 90].map(MigrationEvent.duration) == ["250ms", "1s", "1.5s", "1s", "10s", "12s", "1m30s"])
    }
}
