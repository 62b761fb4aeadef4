#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a migration command so that a forgotten transaction cannot stall the application:
/// preflight, the advisory lock, then attempts of the child under a short `lock_timeout`, each
/// watched on the guard's own connection, retried with backoff when it lost on a lock.
///
/// Single-threaded: one loop waits for the child, the next look at the server and a signal.
/// Only the output copying runs on other threads (inside `MigrationChild`).
public final class MigrationGuard {
    private let settings: MigrationSettings
    private let output: MigrationEventOutput
    private let started = ContinuousClock.now
    private var database: GuardDatabase?
    private var watchdog: Watchdog
    private var attempts = 0
    /// The signal that ended the run: no more attempts after it.
    private var interrupted: Int32?
    private var lastReconnect: ContinuousClock.Instant?
    private var warnedWatchError = false
    private var warnedOtherDatabase = false
    /// The guard reached the server at start; only then is a lost connection reopened.
    private var watching = false
    /// The child's process tree, remembered between looks.
    private var processTree = ProcessTreePorts()
    /// When the current attempt's child exited (seconds since the start).
    private var childExitedAt: Double?

    public init(_ settings: MigrationSettings) {
        self.settings = settings
        self.output = MigrationEventOutput(format: settings.format)
        watchdog = Self.makeWatchdog(settings, ownPID: 0)
    }

    private static func makeWatchdog(_ settings: MigrationSettings, ownPID: Int32) -> Watchdog {
        Watchdog(
            maxLockWaitSeconds: settings.effectiveMaxLockWaitSeconds, terminateIdleAfterSeconds: settings.terminateIdleAfterSeconds,
            policy: settings.policy, ownPID: ownPID)
    }

    /// Runs to the end; returns the exit status for the process.
    public func run() -> Int32 {
        GuardSignals.block()
        do {
            let db = try GuardDatabase(settings.connection)
            database = db
            watching = true
            watchdog = Self.makeWatchdog(settings, ownPID: db.backendPID)
        } catch {
            let target = ConnectionString.redacted(settings.connection.dsn)
            guard settings.unwatched else {
                warn("cannot reach PostgreSQL (\(target)): \(error); not running a migration it cannot watch (--unwatched runs it anyway)")
                return MigrationExit.usage
            }
            warn("cannot reach PostgreSQL (\(target)): \(error); running unwatched (--unwatched): lock_timeout only, retries on the output's lock errors")
        }
        if let database {
            let before = Preflight(settings: settings, output: output)
            for step in [before.takeAdvisoryLock, before.report] {
                if case .stop(let outcome, let status) = step(database) { return finish(outcome: outcome, status: status) }
            }
        }
        return attemptLoop()
    }

    // MARK: attempts

    private func attemptLoop() -> Int32 {
        let tag = "pg_lock_exporter migrate \(getpid())"
        let (environment, ownTag) = ChildEnvironment.make(
            parent: settings.environment, tag: tag, lockTimeoutMilliseconds: Int((settings.lockTimeoutSeconds * 1000).rounded()),
            statementTimeoutMilliseconds: settings.statementTimeoutSeconds.map { Int(($0 * 1000).rounded()) },
            setOptions: settings.setPGOptions)
        while true {
            attempts += 1
            childExitedAt = nil
            watchdog.startAttempt(attempts)
            var event = MigrationEvent(
                .attempt, attempt: attempts,
                message: "attempt \(attempts) of at most \(settings.retry.retries + 1): \(CommandText.shown(settings.command)) ("
                    + childSettings(tag: ownTag).joined(separator: ", ") + ")")
            event.command = settings.command.map(CommandText.redacted)
            output.emit(event)
            let since = serverNow()
            let child: MigrationChild
            do {
                child = try MigrationChild(command: settings.command, environment: environment)
            } catch {
                warn("\(error)")
                return finish(outcome: "not started", status: MigrationExit.usage)
            }
            let status = watch(child, tag: ownTag, since: since)
            child.finishOutput(timeoutSeconds: 2)
            watchdog.endAttempt()
            if let signal = interrupted {
                return finish(outcome: "interrupted by signal \(signal)", status: status)
            }
            let outcome = LockFailureClassifier.classify(
                exitStatus: status, cancelledLockWait: watchdog.cancelledThisAttempt,
                sawLockWaitBeforeExit: sawWaitJustBeforeExit(),
                outputMarker: child.lockFailureMarker)
            switch outcome {
            case .succeeded:
                return finish(outcome: "succeeded", status: 0)
            case .otherFailure:
                return finish(outcome: "failed with exit status \(status) (not a lock failure: not retried)", status: status)
            case .lockFailure(let reason):
                switch settings.retry.next(afterAttempt: attempts, elapsed: elapsed(), unit: Double.random(in: 0..<1)) {
                case .failure(.attemptsExhausted):
                    return finish(outcome: "gave up: attempt \(attempts) failed on a lock and --retries \(settings.retry.retries) are used up",
                                  status: MigrationExit.temporaryFailure)
                case .failure(.durationExhausted):
                    return finish(outcome: "gave up: attempt \(attempts) failed on a lock and --max-duration \(MigrationEvent.duration(settings.retry.maxDurationSeconds)) has passed",
                                  status: MigrationExit.temporaryFailure)
                case .success(let delay):
                    var retry = MigrationEvent(
                        .retry, attempt: attempts,
                        message: "attempt \(attempts) failed on a lock (\(reason)); retrying in \(MigrationEvent.duration(delay))")
                    retry.delaySeconds = delay
                    output.emit(retry)
                    if let signal = GuardSignals.sleep(delay) {
                        interrupted = signal
                        return finish(outcome: "interrupted by signal \(signal)", status: 128 + signal)
                    }
                }
            }
        }
    }

    private func exited(_ status: Int32) -> Int32 {
        childExitedAt = elapsed()
        return status
    }

    /// The last look before the child exited saw one of its sessions waiting on a lock, and was
    /// recent: the exit came while or right after it waited. (A wait seen long before a failure
    /// is not evidence: that failure is not retried.)
    private func sawWaitJustBeforeExit() -> Bool {
        guard let look = watchdog.lastLook, look.sawWait else { return false }
        return (childExitedAt ?? elapsed()) - look.at <= 2 * settings.pollIntervalSeconds + 0.5
    }

    /// What the child was given, for the attempt line.
    private func childSettings(tag: String?) -> [String] {
        var parts: [String] = []
        if settings.setPGOptions {
            parts.append("lock_timeout \(MigrationEvent.duration(settings.lockTimeoutSeconds))")
            if let s = settings.statementTimeoutSeconds { parts.append("statement_timeout \(MigrationEvent.duration(s))") }
        } else {
            parts.append("PGOPTIONS left alone (--no-pgoptions)")
        }
        parts.append("waits cancelled after \(MigrationEvent.duration(settings.effectiveMaxLockWaitSeconds))")
        parts.append(tag.map { "application_name \"\($0)\"" } ?? "application_name from PGAPPNAME")
        return parts
    }

    /// Waits for the child to end, looking at the server every poll interval and forwarding
    /// SIGINT/SIGTERM. A child that outlives a forwarded signal by 10s is killed.
    private func watch(_ child: MigrationChild, tag: String?, since: String) -> Int32 {
        var nextLook = ContinuousClock.now
        var killAt: ContinuousClock.Instant?
        while true {
            if let status = child.exitStatus() { return exited(status) }
            if let killAt, ContinuousClock.now >= killAt { child.send(SIGKILL) }
            let wait = max(0, secondsUntil(nextLook))
            if let received = GuardSignals.wait(seconds: min(wait, 1)), received.signal != SIGCHLD {
                if !received.fromTerminal { child.send(received.signal) }
                if interrupted == nil {
                    warn("received signal \(received.signal); passed it to the migration (pid \(child.pid)); no further attempts")
                    killAt = ContinuousClock.now + .seconds(10)
                }
                interrupted = received.signal
                continue
            }
            if let status = child.exitStatus() { return exited(status) }
            if ContinuousClock.now >= nextLook {
                let lookAgainAfter = look(child, tag: tag, since: since)
                nextLook = ContinuousClock.now + .milliseconds(Int(min(settings.pollIntervalSeconds, lookAgainAfter ?? .infinity) * 1000))
            }
        }
    }

    /// One look at the server: which sessions are the migration's, whether they wait, and what
    /// the watchdog says to do about it. Returns how soon to look again when that is sooner
    /// than the poll interval.
    private func look(_ child: MigrationChild, tag: String?, since: String) -> Double? {
        guard let db = connectedDatabase() else { return nil }
        do {
            let ports = processTree.clientPorts(of: child.pid)
            let pids = try db.migrationSessions(tag: tag, ports: ports, since: since)
            guard !pids.isEmpty else {
                watchdog.noteNoSessions(now: elapsed())
                return nil
            }
            let snapshot = try db.snapshot(queryCharacters: settings.queryCharacters, lockDetails: true)
            var plan = watchdog.observe(snapshot, migration: pids, now: elapsed())
            if !warnedOtherDatabase, let other = watchdog.databases.subtracting([db.database]).sorted().first {
                warnedOtherDatabase = true
                warn("the migration works in database \(other), but --dsn names \(db.database): the preflight looked there; give --dsn the migration's database")
            }
            plan.events.forEach(output.emit)
            for (session, waited) in plan.cancel {
                guard let start = session.backendStart, try db.cancelLockWait(pid: session.pid, backendStart: start) else { continue }
                watchdog.noteCancelled()
                var event = MigrationEvent(
                    .cancelled, attempt: attempts,
                    message: "attempt \(attempts): cancelled the lock wait of the migration's session pid \(session.pid) after \(MigrationEvent.duration(waited))"
                        + " (--max-lock-wait \(MigrationEvent.duration(settings.effectiveMaxLockWaitSeconds))): its lock_timeout"
                        + " \(MigrationEvent.duration(settings.lockTimeoutSeconds)) did not reach the server; the driver ignores PGOPTIONS or a pooler dropped it")
                event.pid = session.pid
                event.waitSeconds = waited
                output.emit(event)
            }
            if !plan.terminate.isEmpty {
                db.terminate(&plan.terminate, policy: watchdog.policy)
                for decision in plan.terminate {
                    if decision.result == .terminated { watchdog.noteTerminated(decision.pid) }
                    var event = MigrationEvent(.terminated, attempt: attempts, message: "attempt \(attempts): \(decision.summary)")
                    event.pid = decision.pid
                    event.decision = decision
                    output.emit(event)
                }
                do { try settings.audit?.append(plan.terminate) } catch { warn("\(error)") }
            }
            return plan.lookAgainAfter
        } catch {
            watchError(error)
            return nil
        }
    }

    // MARK: helpers

    private func finish(outcome: String, status: Int32) -> Int32 {
        let watched = watchdog.watched.count
        let blockers = watchdog.blockers
        var text = "done: \(outcome); exit status \(status); \(attempts) attempt\(attempts == 1 ? "" : "s") in \(MigrationEvent.duration(elapsed()))"
            + "; at least \(MigrationEvent.duration(watchdog.totalLockWaitSeconds)) waiting on locks"
            + "; \(watched) migration session\(watched == 1 ? "" : "s") watched"
        text += blockers.isEmpty ? "; no blocker seen" : "; blockers seen: " + blockers.map(\.text).joined(separator: ", ")
        if database != nil && watched == 0 && attempts > 0 {
            text += "\nnote: no session of the migration was seen (it connected through a Unix socket with its own application_name, or never connected), so the watchdog could not check its lock waits"
        }
        var event = MigrationEvent(.done, attempt: attempts == 0 ? nil : attempts, message: text)
        event.summary = .init(
            outcome: outcome, exitStatus: status, attempts: attempts, lockWaitSeconds: watchdog.totalLockWaitSeconds,
            seconds: elapsed(), sessionsWatched: watched, blockers: blockers)
        output.emit(event)
        return status
    }

    private func warn(_ message: String) {
        output.emit(MigrationEvent(.warning, attempt: attempts == 0 ? nil : attempts, message: message))
    }

    private func watchError(_ error: any Error) {
        if !warnedWatchError { warn("watchdog: cannot read PostgreSQL: \(error)") }
        warnedWatchError = true
        if (error as? PostgresError)?.kind == .connection { database = nil }
    }

    /// The guard's connection, reopened (at most once a second) after it was lost; the advisory
    /// lock is taken again with it.
    private func connectedDatabase() -> GuardDatabase? {
        if let database { return database }
        guard watching else { return nil }
        if let last = lastReconnect, ContinuousClock.now - last < .seconds(1) { return nil }
        lastReconnect = ContinuousClock.now
        guard let db = try? GuardDatabase(settings.connection) else { return nil }
        if (try? db.tryAdvisoryLock(settings.lockKey)) != true {
            warn("watchdog: reconnected, but the advisory lock \(settings.lockKey) is now held by another session")
        } else {
            warn("watchdog: reconnected to PostgreSQL")
        }
        warnedWatchError = false
        database = db
        return db
    }

    private func serverNow() -> String {
        guard let db = connectedDatabase() else { return "-infinity" }
        do { return try db.now() } catch {
            watchError(error)
            return "-infinity"
        }
    }

    private func elapsed() -> Double { -secondsUntil(started) }
}
