/// Carries out a remediation pass: read the database, decide with the policy, and (unless dry
/// run) terminate each target with one statement that re-checks its identity first
/// (`GuardedTermination`: only a decision that carries one is ever carried out).
public struct Remediator {
    public let policy: RemediationPolicy
    public let execute: Bool
    public let statementTimeoutMilliseconds: Int
    /// Act on every database of the server, not only the one connected to.
    public let allDatabases: Bool
    /// The PgBouncers in front of the database: each decision names the application client
    /// behind the pooler (`PoolerJoin`). They only name; they never choose what is terminated.
    public let poolers: TargetPoolers?

    public init(
        policy: RemediationPolicy, execute: Bool, allDatabases: Bool = false, statementTimeoutMilliseconds: Int = 5000,
        poolers: TargetPoolers? = nil
    ) {
        self.poolers = poolers
        self.policy = policy
        self.execute = execute
        self.allDatabases = allDatabases
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
    }

    /// One pass on an open connection: `plan`, then `carryOut`. Decisions come back with their
    /// results and times.
    public func run(on connection: PostgresConnection) throws -> [Decision] {
        var decisions = try plan(on: connection)
        carryOut(&decisions, on: connection)
        return decisions
    }

    /// What a settling pass did, and the read that stopped it early, if one failed: the
    /// decisions of the rounds before it (terminations included) are never lost with it.
    public struct Pass {
        public var decisions: [Decision]
        public var readError: Error?
        /// The pids this pass terminated (they may still show for a moment while they exit).
        public var terminated: Set<Int32> { Set(decisions.filter { $0.result == .terminated }.map(\.pid)) }
    }

    /// A pass that finishes the job: plan and carry out, and while a kill was skipped because its
    /// session's state changed (it ran a statement between the read and the kill, and may be
    /// idle in transaction again, still blocking), read and decide again, up to `maxRounds`
    /// rounds. Sessions already terminated in the pass are left out of later rounds before the
    /// cap is counted (a terminated backend may still show for a moment), and the cap counts
    /// across rounds. A failed first read is thrown; a failed later one ends the pass with what
    /// was done. `beforeCarryingOut` runs between each round's read and its kills (tests stand
    /// time in it).
    public func runUntilSettled(
        on connection: PostgresConnection, maxRounds: Int = 3, beforeCarryingOut: (Int) -> Void = { _ in }
    ) throws -> Pass {
        var pass = Pass(decisions: [], readError: nil)
        for round in 1...max(1, maxRounds) {
            var roundPolicy = policy
            roundPolicy.maxTerminations = max(0, policy.maxTerminations - pass.terminated.count)
            let remediator = Remediator(
                policy: roundPolicy, execute: execute, allDatabases: allDatabases,
                statementTimeoutMilliseconds: statementTimeoutMilliseconds, poolers: poolers)
            var decisions: [Decision]
            do {
                decisions = try remediator.plan(on: connection, skipping: pass.terminated)
            } catch where round > 1 {
                pass.readError = error
                break
            }
            beforeCarryingOut(round)
            remediator.carryOut(&decisions, on: connection)
            pass.decisions += decisions
            guard execute, decisions.contains(where: { $0.code == .stateChanged }) else { break }
        }
        return pass
    }

    /// True when a fresh read finds nothing left that this policy would end, now or once it is
    /// old enough: no termination planned, none held back by the cap or by `--min-idle`.
    /// `ended` are the pids just terminated (they may still show while they exit).
    public func isSettled(on connection: PostgresConnection, ended: Set<Int32>) throws -> Bool {
        try !plan(on: connection, skipping: ended).contains { decision in
            decision.action == .terminate || decision.code == .capReached || decision.code == .belowMinIdle
        }
    }

    /// Reads the database and decides, changing nothing. Pids in `skipping` (just terminated)
    /// are no candidates and take no place under the cap.
    public func plan(on connection: PostgresConnection, skipping: Set<Int32> = []) throws -> [Decision] {
        var snapshot = try connection.readSnapshot(statementTimeoutMilliseconds: statementTimeoutMilliseconds)
        if let poolers {
            PoolerJoin.attach(poolers.read(until: .after(poolers.timeout)).compactMap(\.listing), to: &snapshot.sessions)
        }
        let graph = BlockingGraph(sessions: snapshot.sessions)
        var policy = policy
        if policy.database == nil && !allDatabases { policy.database = connection.database }
        return policy.decide(snapshot: snapshot, graph: graph, ownPID: connection.backendPID, skipping: skipping)
    }

    /// Acts on planned decisions (or marks them dry-run), each termination re-checking its target.
    public func carryOut(_ decisions: inout [Decision], on connection: PostgresConnection) {
        for index in decisions.indices {
            decisions[index].time = StructuredLogHandler.timestamp()
            guard decisions[index].action == .terminate else {
                decisions[index].result = .skipped
                continue
            }
            guard execute else {
                decisions[index].result = .dryRun
                continue
            }
            terminate(&decisions[index], on: connection)
        }
    }

    private func terminate(_ decision: inout Decision, on connection: PostgresConnection) {
        guard let termination = decision.termination else {
            decision.result = .failed
            decision.code = .unknownIdentity
            decision.reason = "the session's identity could not be read"
            return
        }
        do {
            let outcome: Bool? = try connection.execute(GuardedTermination.sql, termination.parameters) { r in
                r.rowCount == 0 ? nil : r.bool(0, 0)
            }
            switch outcome {
            case nil:
                decision.result = .skipped
                decision.code = .stateChanged
                decision.reason = "state changed: the session ended, moved on or started waiting before it could be terminated"
            case true?:
                decision.result = .terminated
            case false?:
                decision.result = .failed
                decision.code = .refused
                decision.reason = "pg_terminate_backend returned false: the session could not be signalled"
            }
        } catch {
            decision.result = .failed
            decision.code = .refused
            decision.reason = "PostgreSQL refused: \(error)"
        }
    }
}
