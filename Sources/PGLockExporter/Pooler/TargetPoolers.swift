import Dispatch
import Logging
import Synchronization

/// The PgBouncers in front of one target (`--pgbouncer.dsn`, or the target's `pgbouncers:` in
/// `--config.file`): read together, each on its own connection, and joined to the target's
/// sessions (`PoolerJoin`) so that a root blocker is named by the application client behind the
/// pooler.
///
/// **A pooler never hides the database.** A pooler that is down, slow, or refuses the credentials
/// costs only its own names: its read ends at its deadline (`timeout`, and never after the
/// caller's), its `pg_pgbouncer_up` is 0, one line in the log says why when it goes down (and
/// one when it is back), and the sessions it would have named keep their `client_addr`.
public final class TargetPoolers: Sendable {
    /// The pooler reads' own bound (`--pgbouncer.timeout`), within the caller's deadline.
    public let timeout: TimeSpan
    private let connections: [PgBouncerConnection]
    private let logger: Logger
    /// Per pooler, whether its last read succeeded (nil before the first read).
    private let up: Mutex<[String: Bool]>
    /// The latest listings, and when they were read: for the episodes' samples, which never
    /// wait on a pooler (`attachRecent`).
    private let recent = Mutex<(listings: [PgBouncerListing], at: ContinuousClock.Instant)?>(nil)
    /// True while a background refresh runs: at most one per target.
    private let refreshing = Atomic<Bool>(false)

    /// One reading: the listing, or why there is none.
    public struct Reading: Sendable {
        public var pgbouncer: String
        public var listing: PgBouncerListing?
        public var error: String?
    }

    public init(_ endpoints: [PgBouncerEndpoint], timeout: TimeSpan, connectTimeoutSeconds: Double, applicationName: String, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
        connections = endpoints.map {
            PgBouncerConnection($0, connectTimeoutSeconds: connectTimeoutSeconds, applicationName: applicationName)
        }
        up = Mutex([:])
    }

    public var names: [String] { connections.map(\.endpoint.name) }

    /// Starts reading every pooler at once, each on a thread of its own, within `timeout` and
    /// `deadline`; `wait()` on the result gives the readings in configuration order.
    public func startReading(until deadline: Deadline) -> Pending {
        let pending = Pending(names: names)
        let bound = Deadline.after(timeout).capped(at: deadline)
        for (position, connection) in connections.enumerated() {
            pending.group.enter()
            // Each read blocks in poll() until its bounded deadline at most; meanwhile the
            // caller reads PostgreSQL, so a slow pooler adds nothing to a scrape's time.
            DispatchQueue.global().async { [self] in
                pending.store(position, self.read(connection, until: bound))
                pending.group.leave()
            }
        }
        pending.deadline = bound
        return pending
    }

    /// Reads every pooler and waits for all of them (`check`, `remediate`, `migrate`).
    public func read(until deadline: Deadline) -> [Reading] { startReading(until: deadline).wait() }

    /// Readings in flight.
    public final class Pending: @unchecked Sendable {
        // Invariant: `deadline` is set before the object is shared; `readings` only under its lock.
        let group = DispatchGroup()
        private let readings: Mutex<[Reading?]>
        fileprivate var deadline = Deadline.after(.zero)

        private let names: [String]

        init(names: [String]) {
            self.names = names
            readings = Mutex(Array(repeating: nil, count: names.count))
        }

        func store(_ position: Int, _ reading: Reading) { readings.withLock { $0[position] = reading } }

        /// Waits for every read (each ends by its deadline; a second more covers the thread's own
        /// latency), then gives what arrived; a read still running counts as timed out.
        public func wait() -> [Reading] {
            _ = group.wait(timeout: Deadline(deadline.instant + .seconds(1)).dispatchTime)
            return zip(names, readings.withLock { $0 }).map { name, reading in
                reading ?? Reading(pgbouncer: name, listing: nil, error: "the read did not finish before its deadline")
            }
        }
    }

    private func read(_ connection: PgBouncerConnection, until deadline: Deadline) -> Reading {
        let name = connection.endpoint.name
        do {
            let listing = try connection.read(until: deadline)
            note(name, up: true, error: nil)
            return Reading(pgbouncer: name, listing: listing, error: nil)
        } catch {
            // A timeout's own words speak of PostgreSQL; this one is the pooler's.
            let message = (error as? PostgresError)?.kind == .timeout
                ? "no answer within \(timeout) (--pgbouncer.timeout) or the caller's deadline; the connection was dropped"
                : PostgresError.oneLine("\(error)")
            note(name, up: false, error: message)
            return Reading(pgbouncer: name, listing: nil, error: message)
        }
    }

    /// Logs a pooler going down (with the reason: PgBouncer's own words, which never carry the
    /// password) and coming back, once per change.
    private func note(_ name: String, up isUp: Bool, error: String?) {
        let previous = up.withLock { $0.updateValue(isUp, forKey: name) }
        guard previous != isUp else { return }
        if isUp {
            if previous == false { logger.info("PgBouncer readable again", metadata: ["pgbouncer": "\(name)"]) }
        } else {
            logger.error(
                "cannot read PgBouncer: its clients are not named until it is back",
                metadata: ["pgbouncer": "\(name)", "error": "\(error ?? "")"])
        }
    }

    /// Keeps the listings of a scrape or refresh for the episodes' samples.
    func remember(_ readings: [Reading]) {
        let listings = readings.compactMap(\.listing)
        recent.withLock { $0 = (listings, .now) }
    }

    /// Names the pooler clients of `sessions` from the latest listings, if they are at most
    /// `maximumAge` old, and starts a refresh in the background when `refresh` (a sample saw
    /// blocking): the sampler never waits on a pooler. A root holds its lock in a transaction,
    /// and stays linked to its client through it, so a listing a second old still names it.
    func attachRecent(to sessions: inout [Session], maximumAge: TimeSpan, refresh: Bool) {
        if let (listings, at) = recent.withLock({ $0 }), ContinuousClock.now - at <= maximumAge.duration {
            PoolerJoin.attach(listings, to: &sessions)
        }
        guard refresh, !refreshing.exchange(true, ordering: .acquiring) else { return }
        DetachedThread.start { [self] in
            self.remember(self.read(until: .after(self.timeout)))
            self.refreshing.store(false, ordering: .releasing)
        }
    }

    /// `pg_pgbouncer_up` and `pg_pgbouncer_clients_waiting` for these readings.
    func write(_ readings: [Reading], into w: inout ExpositionWriter) {
        w.family("pg_pgbouncer_up", .gauge, help: "1 if the last read of a PgBouncer admin console (--pgbouncer.dsn) succeeded, else 0.")
        for (connection, reading) in zip(connections, readings) {
            w.sample("pg_pgbouncer_up", ["pgbouncer": connection.endpoint.name], reading.listing == nil ? 0 : 1)
        }
        w.family(
            "pg_pgbouncer_clients_waiting", .gauge,
            help: "Clients queued in PgBouncer for a server connection (SHOW POOLS cl_waiting), by database: blocked, though PostgreSQL never sees them.")
        for reading in readings {
            guard let listing = reading.listing else { continue }
            var byDatabase: [String: Int] = [:]
            // The admin console's own pseudo-database is no pool of the application's.
            for pool in listing.pools where pool.database != "pgbouncer" { byDatabase[pool.database, default: 0] += pool.clientsWaiting }
            for database in byDatabase.keys.sorted() {
                w.sample("pg_pgbouncer_clients_waiting", ["pgbouncer": listing.pgbouncer, "database": database], byDatabase[database]!)
            }
        }
    }

    /// Closes every pooler connection not in use (at shutdown).
    public func close() { connections.forEach { $0.close() } }
}
