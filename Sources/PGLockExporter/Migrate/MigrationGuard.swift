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
    /// The guard reached the server at start; only then is a lost connection reopened.
    private var watching = false
    /// The connected sockets of the processes below the guard.
    private var processTree = ProcessTreePorts()
    /// Set when, after a reconnect, another session holds the advisory lock: who holds it. The
    /// migration is stopped and no attempt follows.
    private var lostLock: String?

    public init(_ settings: MigrationSettings) {
        self.settings = settings
        self.output = MigrationEventOutput(format: settings.format)
        watchdog = Self.makeWatchdog(settings, ownPID: 0)
    }

    private static func makeWatchdog(_ settings: MigrationSettings, ownPID: Int32) -> Watchdog {
        Watchdog(
            maxLockWaitSeconds: settings.effectiveMaxLockWait.seconds, terminateIdleAfterSeconds: settings.terminateIdleAfter?.seconds,
            policy: settings.policy, ownPID: ownPID)
    }

    /// Runs to the end; returns the exit status for the process.
    public func run() -> Int32 {
        GuardSignals.block()
        if !MigrationChild.becomeSubreaper() {
            warn("cannot become the subreaper of the migration's processes (Linux only): a process it orphans is not waited for")
        }
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
        let tag = ChildEnvironment.randomTag()
        let (environment, ownTag) = ChildEnvironment.make(
            parent: settings.environment, tag: tag, lockTimeoutMilliseconds: settings.lockTimeout.millisecondsRoundedUp,
            statementTimeoutMilliseconds: settings.statementTimeout?.millisecondsRoundedUp,
            setOptions: settings.setPGOptions)
        while true {
            attempts += 1
            watchdog.startAttempt(attempts)
            var event = MigrationEvent(
                .attempt, attempt: attempts,
                message: "attempt \(attempts) of at most \(settings.retry.retries + 1): \(CommandText.shown(settings.command)) ("
                    + childSettings(tag: ownTag).joined(separator: ", ") + ")")
            event.command = CommandText.redactedWords(settings.command)
            output.emit(event)
            let since = serverNow()
            if let lostLock { return finish(outcome: "stopped: lost the advisory lock \(settings.lockKey) to \(lostLock)", status: MigrationExit.temporaryFailure) }
            let child: MigrationChild
            do {
                child = try MigrationChild(command: settings.command, environment: environment)
            } catch {
                warn("\(error)")
                return finish(outcome: "not started", status: MigrationExit.usage)
            }
            let status = watch(child, tag: ownTag, since: since)
            child.finishOutput(within: .seconds(2))
            watchdog.endAttempt()
            if let lostLock {
                return finish(outcome: "stopped: lost the advisory lock \(settings.lockKey) to \(lostLock)", status: MigrationExit.temporaryFailure)
            }
            if let signal = interrupted {
                return finish(outcome: "interrupted by signal \(signal)", status: status)
            }
            let outcome = LockFailureClassifier.classify(
                exitStatus: status, cancelledLockWait: watchdog.cancelledThisAttempt, outputMarker: child.lockFailureMarker)
            switch outcome {
            case .succeeded:
                return finish(outcome: "succeeded", status: 0)
            case .otherFailure:
                return finish(outcome: "failed with exit status \(status) (not a lock failure: not retried)", status: status)
            case .lockFailure(let reason):
                switch settings.retry.next(afterAttempt: attempts, elapsed: TimeSpan(clamping: ContinuousClock.now - started), unit: Double.random(in: 0..<1)) {
                case .failure(.attemptsExhausted):
                    return finish(outcome: "gave up: attempt \(attempts) failed on a lock and --retries \(settings.retry.retries) are used up",
                                  status: MigrationExit.temporaryFailure)
                case .failure(.durationExhausted):
                    return finish(outcome: "gave up: attempt \(attempts) failed on a lock and --max-duration \(MigrationEvent.duration(settings.retry.maxDuration)) has passed",
                                  status: MigrationExit.temporaryFailure)
                case .success(let delay):
                    var retry = MigrationEvent(
                        .retry, attempt: attempts,
                        message: "attempt \(attempts) failed on a lock (\(reason)); retrying in \(MigrationEvent.duration(delay))")
                    retry.delaySeconds = delay.seconds
                    output.emit(retry)
                    if let signal = GuardSignals.sleep(delay) {
                        interrupted = signal
                        return finish(outcome: "interrupted by signal \(signal)", status: 128 + signal)
                    }
                }
            }
        }
    }

    /// What the child was given, for the attempt line.
    private func childSettings(tag: String?) -> [String] {
        var parts: [String] = []
        if settings.setPGOptions {
            parts.append("lock_timeout \(MigrationEvent.duration(settings.lockTimeout))")
            if let s = settings.statementTimeout { parts.append("statement_timeout \(MigrationEvent.duration(s))") }
        } else if settings.poolers != nil {
            parts.append("PGOPTIONS left alone (PgBouncer refuses the startup parameter options)")
        } else {
            parts.append("PGOPTIONS left alone (--no-pgoptions)")
        }
        parts.append("waits cancelled after \(MigrationEvent.duration(settings.effectiveMaxLockWait))")
        parts.append(tag.map { "application_name \"\($0)\"" } ?? "application_name from PGAPPNAME")
        return parts
    }

    /// Waits for the child and everything it started to end, looking at the server every poll
    /// interval while the child runs. SIGINT and SIGTERM are passed to the child's process group.
    /// The group is sent SIGTERM when the child exits leaving processes behind, or when the
    /// advisory lock is lost; SIGKILL follows `MigrationChild.gracePeriod` after the first
    /// SIGTERM, and 5s after that the guard stops waiting. Returns the child's exit status.
    private func watch(_ child: MigrationChild, tag: String?, since: String) -> Int32 {
        var nextLook = ContinuousClock.now
        var killAt: ContinuousClock.Instant?
        var giveUpAt: ContinuousClock.Instant?
        var status: Int32?
        var stopping = false
        func stop(_ why: String) {
            child.signalGroup(SIGTERM)
            killAt = killAt ?? ContinuousClock.now + MigrationChild.gracePeriod
            warn(why + " (SIGTERM to its process group \(child.pid))")
        }
        while true {
            if status == nil, let exited = child.exitStatus() {
                status = exited
                if !stopping && child.groupAlive() {
                    stopping = true
                    stop("the migration exited with status \(exited) and left processes running; stopping them")
                }
            }
            if let status, !child.groupAlive() {
                child.release()
                return status
            }
            if let killAt, giveUpAt == nil, ContinuousClock.now >= killAt {
                child.signalGroup(SIGKILL)
                giveUpAt = ContinuousClock.now + .seconds(5)
            }
            if let giveUpAt, ContinuousClock.now >= giveUpAt {
                warn("processes of the migration's process group \(child.pid) outlived SIGKILL by 5s; not waiting for them")
                child.release()
                return status ?? 128 + SIGKILL
            }
            if let lostLock, !stopping {
                stopping = true
                stop("lost the advisory lock \(settings.lockKey): \(lostLock) holds it now; stopping the migration")
            }
            let wait = status == nil && !stopping ? TimeSpan(clamping: nextLook - ContinuousClock.now) : .milliseconds(200)
            if let received = GuardSignals.wait(min(wait, .seconds(1))), received.signal != SIGCHLD {
                child.signalGroup(received.signal)
                if interrupted == nil {
                    warn("received signal \(received.signal); passed it to the migration's process group \(child.pid); no further attempts")
                    killAt = killAt ?? ContinuousClock.now + MigrationChild.gracePeriod
                }
                interrupted = received.signal
                continue
            }
            if status == nil && !stopping && ContinuousClock.now >= nextLook {
                let lookAgainAfter = look(child, tag: tag, since: since)
                nextLook = ContinuousClock.now + min(settings.pollInterval, lookAgainAfter.map(TimeSpan.seconds) ?? .maximum).duration
            }
        }
    }

    /// One look at the server: which sessions are the migration's, whether they wait, and what
    /// the watchdog says to do about it. Returns how soon to look again when that is sooner
    /// than the poll interval.
    private func look(_ child: MigrationChild, tag: String?, since: String) -> Double? {
        guard let db = connectedDatabase() else { return nil }
        do {
            let endpoints = processTree.clientEndpoints(below: getpid())
            // Through PgBouncer the child's sockets are the pooler's clients: the pooler, read
            // before PostgreSQL, says which server connection serves each now.
            let pooledRead = ContinuousClock.now
            let pooled = settings.poolers.map { poolers in
                PoolerJoin.backendEndpoints(
                    servingClientsAt: endpoints, in: poolers.read(until: .after(poolers.timeout)).compactMap(\.listing))
            } ?? []
            let pids = try db.migrationSessions(tag: tag, endpoints: endpoints, pooled: pooled, since: since)
            guard !pids.isEmpty else {
                watchdog.noteNoSessions()
                return nil
            }
            let snapshot = try db.snapshot(queryCharacters: settings.queryCharacters, lockDetails: true)
            var plan = watchdog.observe(snapshot, migration: pids)
            plan.events.forEach(output.emit)
            for (session, waited) in plan.cancel {
                // A wait found through the pooler is cut only when it began before the pooler was
                // read: the server was then inside the waiting transaction, so linked to the
                // client of that transaction, which the pooler said is the migration's.
                if !pooled.isEmpty && waited <= TimeSpan(clamping: ContinuousClock.now - pooledRead).seconds { continue }
                guard let start = session.backendStart, try db.cancelLockWait(pid: session.pid, backendStart: start) else { continue }
                watchdog.noteCancelled()
                var event = MigrationEvent(
                    .cancelled, attempt: attempts,
                    message: "attempt \(attempts): cancelled the lock wait of the migration's session pid \(session.pid) after \(MigrationEvent.duration(waited))"
                        + " (--max-lock-wait \(MigrationEvent.duration(settings.effectiveMaxLockWait))): its lock_timeout"
                        + " \(MigrationEvent.duration(settings.lockTimeout)) did not reach the server; the driver ignores PGOPTIONS or a pooler dropped it")
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
            text += "\nnote: no session of the migration was seen (it connected through a Unix socket with its own application_name, to another database than --dsn names, or never connected), so the watchdog could not check its lock waits"
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
        do {
            if try db.tryAdvisoryLock(settings.lockKey) {
                warn("watchdog: reconnected to PostgreSQL; the advisory lock \(settings.lockKey) is the guard's again")
            } else {
                let holder = try db.advisoryLockHolder(settings.lockKey)
                lostLock = holder.map { "pid \($0.pid) (application \"\(TerminalText.safe($0.applicationName))\")" } ?? "another session"
            }
        } catch {
            watchError(error)
            return nil
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

    private func elapsed() -> Double { TimeSpan(clamping: ContinuousClock.now - started).seconds }
}
