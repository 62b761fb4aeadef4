/// One background sample of one target (`--sample.interval`), as the sampling loop
/// (`SamplingLoop`) drives it, a step each time its socket is ready:
/// 1. the cheap aggregate (`SamplerStatement`) into the counters;
/// 2. when some database has a blocked session, or an episode is ongoing
///    (`EpisodeRecorder.needsDetail`), the detailed sample (`SnapshotBatch.episodeSample`, as text)
///    into the episodes; else the episodes hear that all is quiet;
/// 3. a sample that fails, passes its deadline, or finds a target it cannot connect to is a gap
///    in the counters and a loss of sight for the episodes.
///
/// It holds the target's connection (`TargetConnection.Lease`) from start to end, so a scrape
/// waits for it (up to its own deadline) rather than interleaving statements; a sample never
/// waits for a scrape: while one holds the connection, the sample is skipped (not a loss of
/// sight) and the next covers the interval. Used by the loop's thread only.
final class TargetSample: @unchecked Sendable {
    // Invariant: used by one thread at a time: made on a connector or the loop, then used by
    // the loop alone (handed over through `ConnectorQueue`'s lock).
    let collector: Collector
    private let lease: TargetConnection.Lease
    private let connection: PostgresConnection
    /// The sample's own deadline: a target that hangs holds only its own sample this long.
    let deadline: Deadline

    private enum Phase {
        case cheap
        case detail(rows: [SamplerStatement.Row], sentAt: EpisodeRecord.Timestamp, decoder: SnapshotBatch.Decoder)
    }

    private var phase = Phase.cheap
    private var rows: [SamplerStatement.Row] = []

    init(collector: Collector, lease: TargetConnection.Lease, connection: PostgresConnection, deadline: Deadline) {
        self.collector = collector
        self.lease = lease
        self.connection = connection
        self.deadline = deadline
    }

    var socket: Int32 { connection.socket }
    var wantsWrite: Bool { connection.pipelineWantsWrite }

    /// Sends the cheap aggregate; false when that failed (the sample is over, recorded as a gap).
    func start() -> Bool {
        do {
            try connection.sendPipeline([(sql: SamplerStatement().sql, parameters: [])])
            return true
        } catch {
            fail(error)
            return false
        }
    }

    /// Reads what arrived; true when the sample is over (recorded, the connection released).
    func advance() -> Bool {
        do {
            switch phase {
            case .cheap:
                let statement = SamplerStatement()
                guard try connection.advancePipeline({ _, result in rows = statement.decode(result) }) else { return false }
                guard let episodes = collector.episodes, episodes.needsDetail || rows.contains(where: { $0.blocked > 0 }) else {
                    finish(detail: nil)
                    return true
                }
                let batch = SnapshotBatch.episodeSample(serverVersion: connection.serverVersion)
                let timeout = min(collector.settings.statementTimeoutMilliseconds, deadline.remaining.milliseconds)
                let sentAt = EpisodeRecord.Timestamp.now()
                try connection.sendPipeline(batch.textStatements(statementTimeoutMilliseconds: timeout))
                phase = .detail(rows: rows, sentAt: sentAt, decoder: SnapshotBatch.Decoder(batch: batch))
                return false
            case .detail(let rows, let sentAt, var decoder):
                let done = try connection.advancePipeline { index, result in decoder.take(index, result) }
                phase = .detail(rows: rows, sentAt: sentAt, decoder: decoder)
                guard done else { return false }
                finish(detail: (decoder.snapshot(), sentAt))
                return true
            }
        } catch {
            fail(error)
            return true
        }
    }

    /// The deadline passed: the statement is cancelled, the connection dropped, the time a gap.
    func timeOut() {
        connection.abandonPipeline()
        fail(PostgresError(kind: .timeout, message: "the sample did not finish before its deadline"))
    }

    private func finish(detail: (ActivitySnapshot, EpisodeRecord.Timestamp)?) {
        lease.release()
        collector.sampler?.counters.withLock { $0.record(rows, at: ContinuousClock.now) }
        if var (snapshot, sentAt) = detail {
            if let poolers = collector.poolers {
                // From the latest pooler read (a scrape's, or a refresh this starts): the sample
                // never waits on a pooler.
                poolers.attachRecent(
                    to: &snapshot.sessions, maximumAge: max(.seconds(2), .seconds(3 * (collector.sampler?.interval ?? 1))),
                    refresh: snapshot.sessions.contains { $0.isBlocked })
            }
            collector.episodes?.observe(snapshot, sentAt: sentAt)
        } else {
            collector.episodes?.observeQuiet(at: .now())
        }
    }

    private func fail(_ error: Error) {
        if !connection.isHealthy { collector.forget(&lease.state) }
        lease.release()
        collector.noteSampleFailed(error)
    }
}

extension Collector {
    /// How a sample begins.
    enum SampleStart {
        /// Sampling is off, or a scrape holds the connection: nothing to do this interval.
        case skipped
        /// No healthy connection: a connector opens one (`connectForSample`) before the sample.
        case needsConnection(TargetConnection.Lease)
        case ready(TargetSample)
    }

    /// A sample's deadline: a sample that hangs keeps the connection from the next scrape, so it
    /// gets at most two intervals (and never more than a statement gets, plus a second).
    var sampleBudget: TimeSpan {
        let interval = sampler?.interval ?? 1
        return min(.milliseconds(settings.statementTimeoutMilliseconds) + .seconds(1), max(.seconds(1), .seconds(2 * interval)))
    }

    func startSample() -> SampleStart {
        guard sampler != nil, let lease = target.tryLease() else { return .skipped }
        guard let connection = lease.state?.connection, connection.isHealthy else { return .needsConnection(lease) }
        return .ready(TargetSample(collector: self, lease: lease, connection: connection, deadline: .after(sampleBudget)))
    }

    /// Opens the target's connection for a sample, within the connect timeout (on a connector
    /// thread: connecting blocks, in DNS and in the TLS handshake). nil when it failed: the
    /// failure is recorded and the slot released.
    func connectForSample(_ lease: TargetConnection.Lease) -> TargetSample? {
        do {
            try connect(&lease.state, deadline: .after(.seconds(settings.connectTimeoutSeconds)))
            return TargetSample(collector: self, lease: lease, connection: lease.state!.connection, deadline: .after(sampleBudget))
        } catch {
            lease.release()
            noteSampleFailed(error)
            return nil
        }
    }

    /// A failed sample: a gap in the counters (the outage is nobody's blocked time) and a loss
    /// of sight for the episodes.
    func noteSampleFailed(_ error: Error) {
        sampler?.counters.withLock { $0.gap() }
        episodes?.lostSight(at: .now())
        logger.debug("sample failed", metadata: ["error": "\(error)"])
    }
}
