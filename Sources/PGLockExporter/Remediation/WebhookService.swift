import Dispatch
import Logging
import Synchronization

/// `remediate --listen`: receives Alertmanager webhooks and runs remediation passes.
///
/// The alert is only a hint: each pass re-reads the database and applies the same policy and
/// guards as the one-shot command. Requests are answered at once; passes run one at a time on
/// a background queue. A redelivered alert (same fingerprint and start time) starts nothing.
/// Terminations are capped per minute across passes.
public final class WebhookService: Sendable {
    public struct Configuration: Sendable {
        public var settings: ConnectionSettings
        public var policy: RemediationPolicy
        public var execute: Bool
        public var allDatabases: Bool
        /// The bearer token; nil only where the caller allowed an unauthenticated service.
        public var token: String?
        public var alertNames: Set<String>
        public var maxTerminationsPerMinute: Int
        public var audit: AuditLog?
        /// The PgBouncers in front of the database: decisions name the client behind them.
        public var poolers: TargetPoolers? = nil

        public init(
            settings: ConnectionSettings, policy: RemediationPolicy, execute: Bool, allDatabases: Bool, token: String?,
            alertNames: Set<String>, maxTerminationsPerMinute: Int, audit: AuditLog?
        ) {
            self.settings = settings
            self.policy = policy
            self.execute = execute
            self.allDatabases = allDatabases
            self.token = token
            self.alertNames = alertNames
            self.maxTerminationsPerMinute = maxTerminationsPerMinute
            self.audit = audit
        }
    }

    public static let webhookPath = "/webhook/alertmanager"
    /// Webhook results counted by `pg_lock_remediator_webhook_requests_total`.
    static let results = ["accepted", "ignored", "duplicate", "unauthorized", "bad_request", "too_large"]

    private struct State {
        var requests: [String: Int] = Dictionary(uniqueKeysWithValues: WebhookService.results.map { ($0, 0) })
        var decisions: [DecisionKey: Int] = [:]
        var terminations = 0
        var failures = 0
        var passes = 0
        var passErrors = 0
        var lastActionTime: Double = 0
        /// Delivery key → when it was accepted. A redelivery within `redeliveryWindow` starts nothing.
        var seen: [String: ContinuousClock.Instant] = [:]
        var recentTerminations: [ContinuousClock.Instant] = []
    }

    private struct DecisionKey: Hashable, Comparable {
        var action: String, reason: String, dryRun: String
        static func < (a: DecisionKey, b: DecisionKey) -> Bool { (a.action, a.reason, a.dryRun) < (b.action, b.reason, b.dryRun) }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "pg_lock_exporter.remediation")
    private let pending = DispatchGroup()
    static let maxRemembered = 10_000
    /// How long an accepted delivery suppresses its redeliveries. Alertmanager repeats a firing
    /// alert after `repeat_interval`; by then a new pass is wanted if the blocker is still there.
    static let redeliveryWindow = Duration.seconds(300)

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Routes: `POST /webhook/alertmanager`, `GET /metrics`, `GET /`, `GET /-/healthy`.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case Self.webhookPath:
            guard request.method == "POST" else { return .methodNotAllowed(allowed: "POST") }
            return receive(request)
        case "/metrics", "/", "/-/healthy":
            guard request.method == "GET" || request.method == "HEAD" else { return .methodNotAllowed(allowed: "GET, HEAD") }
            if request.path == "/-/healthy" { return .text(200, "OK\n") }
            if request.path == "/" {
                return .text(
                    200, "pg_lock_exporter \(BuildInfo.version) remediator: POST Alertmanager webhooks to \(Self.webhookPath); metrics at /metrics\n")
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", ExpositionWriter.contentType)], body: metrics())
        default:
            return .notFound()
        }
    }

    private func count(_ result: String) {
        state.withLock { $0.requests[result, default: 0] += 1 }
    }

    private func json(_ status: Int, _ word: String, _ message: String? = nil, headers: [(String, String)] = []) -> HTTPResponse {
        var body = "{\"status\":\"\(word)\""
        if let message { body += ",\"message\":\"\(StructuredLogHandler.escape(message))\"" }
        body += "}\n"
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
    }

    /// The answers a request gets from its headers alone, before its body is read
    /// (`HTTPServer`'s preflight): on the webhook, 401 without the bearer token and 413 when
    /// `Content-Length` is over the cap; elsewhere 404 and 405, so a body sent to a path that
    /// takes none is never read. nil lets the request go on.
    public func preflight(_ request: HTTPRequest) -> HTTPResponse? {
        switch request.path {
        case Self.webhookPath:
            guard request.method == "POST" else { return .methodNotAllowed(allowed: "POST") }
            return refusal(request)
        case "/metrics", "/", "/-/healthy":
            return request.method == "GET" || request.method == "HEAD" ? nil : .methodNotAllowed(allowed: "GET, HEAD")
        default:
            return .notFound()
        }
    }

    /// Only `POST /webhook/alertmanager` takes a body (`HTTPServer`'s `acceptsBody`).
    public static func acceptsBody(_ request: HTTPRequest) -> Bool {
        request.path == webhookPath && request.method == "POST"
    }

    private func refusal(_ request: HTTPRequest) -> HTTPResponse? {
        if let token = configuration.token, !ConstantTime.equal(request.headers["authorization"] ?? "", "Bearer " + token) {
            count("unauthorized")
            logger.warning("webhook rejected: missing or wrong bearer token")
            return json(401, "unauthorized", "a valid Authorization: Bearer token is required", headers: [("WWW-Authenticate", "Bearer")])
        }
        if request.bodyTooLarge {
            count("too_large")
            return json(413, "too_large", "the body is larger than the limit")
        }
        return nil
    }

    private func receive(_ request: HTTPRequest) -> HTTPResponse {
        if let refused = refusal(request) { return refused }
        let payload: AlertmanagerWebhook
        do {
            payload = try AlertmanagerWebhook.parse(request.body)
        } catch {
            count("bad_request")
            logger.warning("webhook rejected", metadata: ["error": "\(error)"])
            return json(400, "bad_request", error.description)
        }
        let relevant = payload.alerts.filter { alert in
            guard alert.isFiring, configuration.alertNames.contains(alert.labels["alertname"] ?? "") else { return false }
            guard let datname = alert.labels["datname"], !configuration.policy.onlyDatabases.isEmpty else { return true }
            return configuration.policy.onlyDatabases.contains { $0.matches(datname) }
        }
        guard !relevant.isEmpty else {
            count("ignored")
            return json(200, "ignored", "no firing alert this remediator acts on")
        }
        let now = ContinuousClock.now
        let fresh = state.withLock { state in
            if state.seen.count > Self.maxRemembered { state.seen = state.seen.filter { now - $0.value < Self.redeliveryWindow } }
            return relevant.filter { alert in
                let key = alert.deliveryKey
                if let accepted = state.seen[key], now - accepted < Self.redeliveryWindow { return false }
                state.seen[key] = now
                return true
            }
        }
        guard !fresh.isEmpty else {
            count("duplicate")
            return json(200, "duplicate", "already handled this firing")
        }
        count("accepted")
        // One pass per database named by the alerts; alerts without datname use the default scope.
        var keysByScope: [String?: [String]] = [:]
        for alert in fresh { keysByScope[alert.labels["datname"], default: []].append(alert.deliveryKey) }
        let scopes = Set(keysByScope.keys)
        logger.info(
            "webhook accepted", metadata: ["alerts": "\(fresh.count)", "databases": "\(scopes.map { $0 ?? "(default)" }.sorted())"])
        for scope in scopes.sorted(by: { ($0 ?? "") < ($1 ?? "") }) {
            pending.enter()
            let keys = keysByScope[scope] ?? []
            queue.async {
                // A pass that could not finish the job (PostgreSQL unreachable, a cap, a blocker
                // still too young, a failure) forgets its deliveries, so Alertmanager's next
                // repeat of the alert starts a new pass.
                if !self.pass(database: scope) { self.state.withLock { state in keys.forEach { state.seen[$0] = nil } } }
                self.pending.leave()
            }
        }
        return json(202, "accepted")
    }

    /// Blocks until queued passes are done (at shutdown), at most `timeout`.
    public func drain(timeout: TimeSpan) {
        _ = pending.wait(timeout: timeout.fromNow)
    }

    /// One remediation pass, on the background queue. Returns false when it left work undone.
    @discardableResult
    func pass(database: String?) -> Bool {
        let now = ContinuousClock.now
        let budget = state.withLock { state -> Int in
            state.recentTerminations.removeAll { now - $0 > .seconds(60) }
            return max(0, configuration.maxTerminationsPerMinute - state.recentTerminations.count)
        }
        var policy = configuration.policy
        policy.maxTerminations = min(policy.maxTerminations, budget)
        let decisions: [Decision]
        let settled: Bool
        var readFailed = false
        do {
            let connection = try PostgresConnection(configuration.settings)
            // Like the one-shot command, act only in the DSN's database unless --all-databases;
            // an alert about another database is a hint for some other remediator.
            if let database, !configuration.allDatabases, database != connection.database {
                logger.warning(
                    "alert ignored: it is about another database (--all-databases to act on any)",
                    metadata: ["alert_datname": "\(database)", "datname": "\(connection.database)"])
                return true
            }
            if let database { policy.database = database }
            let remediator = Remediator(
                policy: policy, execute: configuration.execute, allDatabases: configuration.allDatabases,
                statementTimeoutMilliseconds: configuration.settings.statementTimeoutMilliseconds, poolers: configuration.poolers)
            let pass = try remediator.runUntilSettled(on: connection)
            decisions = pass.decisions
            // A delivery is done when the database has no root left that the policy would end;
            // a dry run changes nothing, so it is done once it has reported. A read that fails
            // after the first round leaves it undone, with what was done still audited and counted.
            if pass.readError != nil {
                settled = false
                readFailed = true
                logger.error("remediation pass stopped early: cannot read PostgreSQL", metadata: ["error": "\(pass.readError!)"])
            } else if configuration.execute {
                do { settled = try remediator.isSettled(on: connection, ended: pass.terminated) } catch {
                    settled = false
                    logger.error("cannot tell whether the remediation is complete", metadata: ["error": "\(error)"])
                }
            } else {
                settled = !decisions.contains { $0.code == .capReached || $0.code == .belowMinIdle }
            }
        } catch {
            state.withLock {
                $0.passes += 1
                $0.passErrors += 1
            }
            logger.error("remediation pass failed: cannot read PostgreSQL", metadata: ["error": "\(error)"])
            return false
        }
        do { try configuration.audit?.append(decisions) } catch {
            logger.error("cannot write the audit log", metadata: ["error": "\(error)"])
        }
        for decision in decisions {
            let level: Logger.Level = decision.result == .failed ? .error : (decision.result == .terminated ? .warning : .info)
            logger.log(
                level: level, "\(decision.summary)",
                metadata: ["pid": "\(decision.pid)", "action": "\(decision.action.rawValue)", "result": "\(decision.result.rawValue)"])
        }
        let wallClock = StructuredLogHandler.unixTime()
        state.withLock { state in
            state.passes += 1
            if readFailed { state.passErrors += 1 }
            for decision in decisions {
                let key = DecisionKey(action: decision.action.rawValue, reason: decision.code.rawValue, dryRun: configuration.execute ? "false" : "true")
                state.decisions[key, default: 0] += 1
                if decision.result == .terminated {
                    state.terminations += 1
                    state.recentTerminations.append(ContinuousClock.now)
                }
                if decision.result == .failed { state.failures += 1 }
                if decision.result == .terminated || decision.result == .failed { state.lastActionTime = wallClock }
            }
        }
        return settled && !decisions.contains { $0.result == .failed }
    }

    func metrics() -> [UInt8] {
        let s = state.withLock { $0 }
        var w = ExpositionWriter()
        w.family("pg_lock_remediator_webhook_requests_total", .counter, help: "Alertmanager webhook requests by result.")
        for result in s.requests.keys.sorted() { w.sample("pg_lock_remediator_webhook_requests_total", ["result": result], s.requests[result]!) }
        w.family("pg_lock_remediator_decisions_total", .counter, help: "Remediation decisions by action, reason and whether it was a dry run.")
        for key in s.decisions.keys.sorted() {
            w.sample("pg_lock_remediator_decisions_total", ["action": key.action, "reason": key.reason, "dry_run": key.dryRun], s.decisions[key]!)
        }
        w.family("pg_lock_remediator_terminations_total", .counter, help: "Sessions terminated.")
        w.sample("pg_lock_remediator_terminations_total", s.terminations)
        w.family("pg_lock_remediator_termination_failures_total", .counter, help: "Terminations PostgreSQL refused or that failed.")
        w.sample("pg_lock_remediator_termination_failures_total", s.failures)
        w.family("pg_lock_remediator_passes_total", .counter, help: "Remediation passes run.")
        w.sample("pg_lock_remediator_passes_total", s.passes)
        w.family("pg_lock_remediator_pass_errors_total", .counter, help: "Remediation passes that could not read PostgreSQL.")
        w.sample("pg_lock_remediator_pass_errors_total", s.passErrors)
        w.family("pg_lock_remediator_last_action_timestamp_seconds", .gauge, help: "When the last termination was attempted (0 = never).")
        w.sample("pg_lock_remediator_last_action_timestamp_seconds", s.lastActionTime)
        w.family("pg_lock_remediator_dry_run", .gauge, help: "1 when the remediator only reports what it would do (no --execute).")
        w.sample("pg_lock_remediator_dry_run", configuration.execute ? 0 : 1)
        Collector.writeProcessMetrics(into: &w)
        return w.bytes
    }
}
