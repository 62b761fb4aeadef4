import Testing

@testable import PGLockExporter

#if canImport(Glibc)
import Glibc
#endif

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(retries: 10, baseDelay: .seconds(1), maxDelay: .seconds(30), maxDuration: .seconds(900))

    @Test func ceilingDoublesUpToTheCap() {
        #expect((1...7).map { policy.delayCeiling(beforeRetry: $0) } == [1, 2, 4, 8, 16, 30, 30].map(TimeSpan.seconds))
        #expect(policy.delayCeiling(beforeRetry: 500) == .seconds(30))
        #expect(policy.delayCeiling(beforeRetry: .max) == .seconds(30))
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        #expect(policy.next(afterAttempt: 3, elapsed: .seconds(10), unit: 0) == .success(.zero))
        #expect(policy.next(afterAttempt: 3, elapsed: .seconds(10), unit: 0.5) == .success(.seconds(2)))
        #expect(policy.next(afterAttempt: 3, elapsed: .seconds(10), unit: 0.999) == .success(.seconds(4 * 0.999)))
    }

    @Test func attemptsRunOut() {
        // 10 retries: after the 11th attempt there is no 12th.
        #expect(policy.next(afterAttempt: 10, elapsed: .seconds(10), unit: 0.5) == .success(.seconds(15)))
        #expect(policy.next(afterAttempt: 11, elapsed: .seconds(10), unit: 0.5) == .failure(.attemptsExhausted))
        let none = RetryPolicy(retries: 0)
        #expect(none.next(afterAttempt: 1, elapsed: .zero, unit: 0.5) == .failure(.attemptsExhausted))
    }

    @Test func theDelayNeverRunsPastTheTotalDuration() {
        let short = RetryPolicy(retries: 10, baseDelay: .seconds(8), maxDelay: .seconds(30), maxDuration: .seconds(20))
        #expect(short.next(afterAttempt: 2, elapsed: .seconds(18), unit: 0.9) == .success(.seconds(2)))
        #expect(short.next(afterAttempt: 2, elapsed: .seconds(20), unit: 0.9) == .failure(.durationExhausted))
        #expect(short.next(afterAttempt: 2, elapsed: .seconds(25), unit: 0) == .failure(.durationExhausted))
    }
}

@Suite struct LockFailureClassifierTests {
    @Test func successIsSuccessWhateverWasSeen() {
        #expect(LockFailureClassifier.classify(exitStatus: 0, cancelledLockWait: true, outputMarker: "55P03") == .succeeded)
    }

    @Test func eachProofOfALockFailure() {
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: true, outputMarker: nil)
                == .lockFailure("the watchdog cancelled its lock wait"))
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, outputMarker: "55P03")
                == .lockFailure("its output says \"55P03\""))
        #expect(
            LockFailureClassifier.classify(
                exitStatus: 3, cancelledLockWait: false, output: Array("ERROR:  canceling statement due to lock timeout\n".utf8))
                == .lockFailure("its output says \"canceling statement due to lock timeout\""))
    }

    @Test func anyOtherFailureIsNotRetried() {
        #expect(LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, outputMarker: nil) == .otherFailure)
        // Issue 19: a statement that waited on a lock, got it, and then failed on a SQL error.
        #expect(
            LockFailureClassifier.classify(
                exitStatus: 3, cancelledLockWait: false,
                output: Array("INSERT 0 1\nBEGIN\nLOCK TABLE\npsql:m.sql:4: ERROR:  division by zero\n".utf8))
                == .otherFailure)
        #expect(
            LockFailureClassifier.classify(exitStatus: 1, cancelledLockWait: false, output: Array("ERROR: canceling statement due to user request".utf8))
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
        // Found by the pgoptions fuzz target: a dangling backslash escaped the space before ours,
        // and PostgreSQL read "-c x=y -c" as one value; lock_timeout was never set.
        #expect(ChildEnvironment.pgOptions(existing: "-c x=y\\", lockTimeoutMilliseconds: 500, statementTimeoutMilliseconds: nil)
            == "-c x=y -c lock_timeout=500")
        #expect(ChildEnvironment.pgOptions(existing: "-c x=y\\\\", lockTimeoutMilliseconds: 500, statementTimeoutMilliseconds: nil)
            == "-c x=y\\\\ -c lock_timeout=500")
        #expect(ChildEnvironment.pgOptions(existing: "-c lock_timeout=0", lockTimeoutMilliseconds: 2000, statementTimeoutMilliseconds: nil)
            == "-c lock_timeout=0 -c lock_timeout=2000")
    }

    @Test func theTagIsRandomPerRunAndFitsApplicationName() {
        let tags = (0..<100).map { _ in ChildEnvironment.randomTag() }
        #expect(Set(tags).count == 100)
        #expect(tags.allSatisfy { $0.utf8.count == 57 && $0.utf8.count <= 63 })
        #expect(tags.allSatisfy { $0.hasPrefix("pg_lock_exporter migrate ") && $0.dropFirst(25).allSatisfy(\.isHexDigit) })
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
    typealias Endpoint = ProcessTreePorts.Endpoint

    @Test func procNetTCPRowsGiveStateAndLocalEnd() {
        let text = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 31337 1 0000000000000000 100 0 0 10 0
               1: 0200007F:D431 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 20 4 30 10 -1
               2: 0100007F:D432 0100007F:1538 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0000000000000000
               3: 0100007F:ZZZZ 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 5 1
               4: 0100007:D433 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 6 1
            garbage
            """
        let sockets = ProcessTreePorts.sockets(procNetTCP: text)
        #expect(sockets.count == 2)
        #expect(sockets[31337] == .init(local: [Endpoint(address: "127.0.0.1", port: 5432)], state: 0x0A))
        #expect(sockets[31337]?.isConnected == false)
        #expect(sockets[424242] == .init(local: [Endpoint(address: "127.0.0.2", port: 54321)], state: 1))
        #expect(sockets[424242]?.isConnected == true)
    }

    @Test func procNetTCP6RowsAndMappedAddresses() {
        let text = """
              sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:1538 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 0 10 -1
               1: 0000000000000000FFFF00000100007F:C351 0000000000000000FFFF00000100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 20 4 0 10 -1
            """
        let sockets = ProcessTreePorts.sockets(procNetTCP: text)
        #expect(sockets[777]?.local == [Endpoint(address: "0:0:0:0:0:0:0:1", port: 50000)])
        #expect(sockets[778]?.local == [Endpoint(address: "0:0:0:0:0:ffff:7f00:1", port: 50001), Endpoint(address: "127.0.0.1", port: 50001)])
    }

    @Test func processStatSurvivesOddCommandNames() {
        let tail = " 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
        #expect(ProcessTreePorts.processStat("4242 (python3) S 4200 4242 4200" + tail) == .init(pid: 4242, parent: 4200, startTime: 987654))
        #expect(ProcessTreePorts.processStat("17 (a) b (c)) R 9 17 17" + tail)?.parent == 9)
        #expect(ProcessTreePorts.processStat("4242 (python3) S 4200 4242 4200 0") == nil)
        #expect(ProcessTreePorts.processStat("garbage") == nil)
        // Found by the proc-net-tcp fuzz target: a name starting with a combining mark hid "(".
        #expect(ProcessTreePorts.processStat("4242 (\u{0486}\u{08}) S 1 4242 4242" + tail) == .init(pid: 4242, parent: 1, startTime: 987654))
        #expect(ProcessTreePorts.processStat("4242 (x)\u{0301}) S 1 4242 4242" + tail)?.parent == 1)
        #expect(ProcessTreePorts.processStat(")(") == nil)
    }

    /// A socket of this test process, seen from its parent's tree: the connected one counts, the
    /// one that only listens does not.
    @Test func connectedSocketsCountListeningOnesDoNot() throws {
        func tcp() -> Int32 { socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        func name(_ fd: Int32, peer: Bool = false) -> sockaddr_in {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length) }
            }
            return address
        }
        func listening() throws -> Int32 {
            let fd = tcp()
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(bound == 0 && listen(fd, 1) == 0)
            return fd
        }
        let listener = try listening()
        let idle = try listening()
        let client = tcp()
        defer { [listener, idle, client].forEach { close($0) } }
        var target = name(listener)
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        let clientPort = Int(UInt16(bigEndian: name(client).sin_port))
        let idlePort = Int(UInt16(bigEndian: name(idle).sin_port))
        var tree = ProcessTreePorts()
        for _ in 0..<2 {  // the second look from what it remembers
            let endpoints = tree.clientEndpoints(below: getppid())
            #expect(endpoints.contains(Endpoint(address: "127.0.0.1", port: clientPort)))
            #expect(!endpoints.contains(Endpoint(address: "127.0.0.1", port: idlePort)))
            #expect(!tree.clientEndpoints(below: getpid()).contains(Endpoint(address: "127.0.0.1", port: clientPort)))
        }
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

    /// Issue 19: `--format json` carried `--password VALUE` in clear. Both forms come from one
    /// redaction now.
    @Test func theJSONWordsHideWhatTheTextHides() {
        let words = [
            "tool", "--password", "s1", "--password=s2", "--db-password", "s3", "-password", "s4", "--passwd", "s5",
            "PGPASSWORD=s6", "postgresql://u:s7@h/d", "postgres://u:p@s8@h:5432/d", "dbname=d password=s9", "-p5432", "-p", "5432",
        ]
        let redacted = CommandText.redactedWords(words)
        #expect(redacted == [
            "tool", "--password", "…", "--password=…", "--db-password", "…", "-password", "…", "--passwd", "…",
            "PGPASSWORD=…", "postgresql://u:…@h/d", "postgres://u:…@h:5432/d", "dbname=d password=…", "-p5432", "-p", "5432",
        ])
        let text = CommandText.shown(words)
        for secret in (1...9).map({ "s\($0)" }) {
            #expect(!redacted.contains { $0.contains(secret) } && !text.contains(secret))
        }
    }
}

@Suite struct MigrationDurationTextTests {
    @Test func tenthsBelowTenSeconds() {
        #expect([0.25, 1, 1.5, 1.04, 9.96, 12.4, 90].map(MigrationEvent.duration) == ["250ms", "1s", "1.5s", "1s", "10s", "12s", "1m30s"])
    }
}
