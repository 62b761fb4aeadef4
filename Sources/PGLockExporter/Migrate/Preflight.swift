/// What the guard does before the first attempt: take the advisory lock that keeps migrations
/// one at a time, then report what the migration would queue behind (and, when asked, wait for
/// it to go or refuse to start).
struct Preflight {
    let settings: MigrationSettings
    let output: MigrationEventOutput

    enum Result {
        case proceed
        /// Do not start: the run ends with this outcome and exit status.
        case stop(outcome: String, status: Int32)
    }

    /// `pg_try_advisory_lock`, again every 200ms up to `--wait-lock`; the holder is named.
    func takeAdvisoryLock(_ db: GuardDatabase) -> Result {
        let key = settings.lockKey
        let deadline = ContinuousClock.now + settings.waitLock.duration
        var announced = false
        do {
            while true {
                if try db.tryAdvisoryLock(key) { return .proceed }
                let holder = try db.advisoryLockHolder(key)
                let who = holder.map { "pid \($0.pid), application \"\($0.applicationName)\"" } ?? "a session that just ended"
                if ContinuousClock.now >= deadline {
                    warn("another migration holds the advisory lock \(key) (\(who)); not had within --wait-lock \(MigrationEvent.duration(settings.waitLock))")
                    return .stop(outcome: "not started: another migration runs", status: MigrationExit.temporaryFailure)
                }
                if !announced {
                    warn("another migration holds the advisory lock \(key) (\(who)); waiting up to \(MigrationEvent.duration(settings.waitLock))")
                    announced = true
                }
                if let signal = GuardSignals.sleep(min(.milliseconds(200), TimeSpan(clamping: deadline - ContinuousClock.now))) {
                    return .stop(outcome: "interrupted by signal \(signal)", status: 128 + signal)
                }
            }
        } catch {
            warn("cannot take the advisory lock \(key): \(error)")
            return .stop(outcome: "not started", status: MigrationExit.usage)
        }
    }

    /// Prints the database's blocking trees and its idle-in-transaction sessions holding locks,
    /// as `check` does; `--wait-clear` waits for them to go, `--require-clear` refuses to start
    /// while they are there.
    func report(_ db: GuardDatabase) -> Result {
        let deadline = ContinuousClock.now + (settings.waitClear ?? .zero).duration
        var reported = false
        while true {
            let state: (clear: Bool, event: MigrationEvent)
            do { state = try read(db) } catch {
                warn("preflight: cannot read PostgreSQL: \(error)")
                return .stop(outcome: "not started", status: MigrationExit.usage)
            }
            if state.clear || ContinuousClock.now >= deadline {
                if !reported || state.clear { output.emit(state.event) }
                if !state.clear && settings.requireClear {
                    return .stop(outcome: "refused: the database is not clear (--require-clear)", status: MigrationExit.temporaryFailure)
                }
                return .proceed
            }
            if !reported {
                output.emit(state.event)
                warn("preflight: waiting up to \(MigrationEvent.duration(settings.waitClear ?? .zero)) for them to go (--wait-clear)")
                reported = true
            }
            if let signal = GuardSignals.sleep(min(.milliseconds(500), TimeSpan(clamping: deadline - ContinuousClock.now))) {
                return .stop(outcome: "interrupted by signal \(signal)", status: 128 + signal)
            }
        }
    }

    private func read(_ db: GuardDatabase) throws -> (clear: Bool, event: MigrationEvent) {
        var snapshot = try db.snapshot(queryCharacters: settings.queryCharacters, lockDetails: true)
        let holding = try db.idleInTransactionHoldingRelationLocks()
        let graph = BlockingGraph(sessions: snapshot.sessions)
        // Idle-in-transaction sessions without a relation lock cannot hold a migration up.
        snapshot.sessions = snapshot.sessions.filter { !$0.isIdleInTransaction || holding.contains($0.pid) || graph.isBlocking($0.pid) }
        let report = BlockingReport(snapshot: snapshot, graph: graph, database: db.database)
        let idle = report.idleInTransactionNotBlocking
        let clear = report.blockingTrees.isEmpty && idle.isEmpty
        var event: MigrationEvent
        if clear {
            event = MigrationEvent(
                .preflight, message: "preflight: database \(db.database) is clear: no blocking tree, no session idle in transaction holding a lock")
        } else {
            let trees = report.blockingTrees.count
            event = MigrationEvent(
                .preflight,
                message: "preflight: database \(db.database) has \(trees) blocking tree\(trees == 1 ? "" : "s") and \(idle.count) session\(idle.count == 1 ? "" : "s") idle in transaction holding locks; the migration may queue behind them:\n"
                    + BlockingReportText(report, color: false).render().trimmingSuffix("\n"))
        }
        event.trees = report.blockingTrees
        event.idleInTransaction = idle.map(\.pid)
        return (clear, event)
    }

    private func warn(_ message: String) { output.emit(MigrationEvent(.warning, message: message)) }
}
