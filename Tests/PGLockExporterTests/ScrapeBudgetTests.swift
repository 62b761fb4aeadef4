import PropertyBased
import Testing

@testable import PGLockExporter

/// The scrape budget from `X-Prometheus-Scrape-Timeout-Seconds`: between the floor and
/// `--web.scrape-timeout`, hostile values get the default (finding 1 of issue 19).
@Suite struct ScrapeBudgetTests {
    static let ceiling = TimeSpan.seconds(10)

    func budget(_ header: String?, ceiling: TimeSpan = ceiling) -> TimeSpan {
        ScrapeBudget.budget(header: header, ceiling: ceiling)
    }

    @Test func theHeaderLessTheMarginElseTheDefault() {
        #expect(budget("3") == .milliseconds(2500))
        #expect(budget("10") == .seconds(9))
        #expect(budget(nil) == .seconds(9))
        #expect(budget("1") == .milliseconds(500))  // 1 s less the margin
        #expect(budget("0.6") == .milliseconds(250))  // 100ms less the margin: the floor
        #expect(budget("0.1") == .milliseconds(250))  // the floor
        #expect(budget("0.000001") == .milliseconds(250))
        #expect(budget(" 3\t") == .milliseconds(2500))  // optional whitespace around the value
        #expect(budget("2.5") == .seconds(2))
    }

    @Test(arguments: [
        "1.1e10", "11", "10.000001", "1e308", "1.7976931348623157e308", "99999999999999999999999999999", "0x1p62",
        "86400", "31536000",
    ])
    func aHeaderAboveTheCeilingGetsTheCeiling(header: String) {
        #expect(budget(header) == .seconds(9))
        #expect(ScrapeBudget.timeout(header: header, ceiling: Self.ceiling) == Self.ceiling)
    }

    @Test(arguments: [
        "", " ", "abc", "-5", "-0", "0", "0.0", "-1e-300", "inf", "+inf", "-inf", "infinity", "-infinity", "nan", "-nan",
        "NaN", "snan", "1e400", "-1e400", "3s", "3,5", "1 2", "\u{0}", "٣", "½", String(repeating: "9", count: 10_000),
    ])
    func nonsenseGetsTheDefault(header: String) {
        #expect(budget(header) == .seconds(9), "\(header.prefix(20))")
    }

    @Test func theCeilingIsTheOperatorsFlag() {
        #expect(budget("30", ceiling: .seconds(60)) == .seconds(27))  // 90%: earlier than 0.5s before
        #expect(budget("120", ceiling: .seconds(60)) == .seconds(54))
        #expect(budget(nil, ceiling: .seconds(2)) == .milliseconds(1500))
        // A ceiling below the floor (only reachable programmatically; the flag needs 1s) wins.
        #expect(budget(nil, ceiling: .milliseconds(100)) == .milliseconds(100))
    }

    /// Any header text: the budget lies between the floor and the ceiling.
    @Test func anyHeaderGivesABudgetBetweenTheFloorAndTheCeiling() async {
        let header = Gen.element(of: Array("0123456789.eE+-xXpPaAfFinINs \t")).compactMap { $0 }.string(of: 0...30)
        await propertyCheck(count: 3000, input: header) { header in
            let budget = budget(header)
            #expect(budget >= ScrapeBudget.floor && budget <= Self.ceiling, "\(header)")
        }
        await propertyCheck(count: 3000, input: Gen.uint64().map { Double(bitPattern: $0) }) { seconds in
            let budget = budget("\(seconds)")
            #expect(budget >= ScrapeBudget.floor && budget <= Self.ceiling, "\(seconds)")
        }
    }
}

/// `ExporterRoutes.route`: the routing and header/query parsing, without a database (the
/// collectors are never asked for anything).
@Suite struct ExporterRouteTests {
    static let single = ExporterRoutes(
        telemetryPath: "/metrics", collector: Collector(settings: ConnectionSettings(dsn: ""), logger: .init(label: "test")),
        scrapeTimeout: .seconds(10))
    static let multi = ExporterRoutes(
        telemetryPath: "/metrics",
        targets: ["a": Collector(settings: ConnectionSettings(dsn: ""), logger: .init(label: "test"))], scrapeTimeout: .seconds(4))

    @Test func routes() {
        func route(_ routes: ExporterRoutes, _ method: String, _ path: String, query: [String: String] = [:], header: String? = nil)
            -> ExporterRoutes.Route
        {
            routes.route(
                HTTPRequest(
                    method: method, path: path, query: query,
                    headers: header.map { ["x-prometheus-scrape-timeout-seconds": $0] } ?? [:]))
        }
        #expect(route(Self.single, "GET", "/metrics") == .metrics(budget: .seconds(9)))
        #expect(route(Self.single, "HEAD", "/metrics", header: "1.1e10") == .metrics(budget: .seconds(9)))
        #expect(route(Self.single, "GET", "/metrics", header: "nan") == .metrics(budget: .seconds(9)))
        #expect(route(Self.single, "POST", "/metrics") == .methodNotAllowed)
        #expect(route(Self.single, "get", "/metrics") == .methodNotAllowed)
        #expect(route(Self.single, "GET", "/probe", query: ["target": "a"]) == .notFound)
        #expect(route(Self.single, "GET", "/") == .landingPage)
        #expect(route(Self.single, "GET", "/-/healthy") == .healthy)
        #expect(route(Self.single, "GET", "/metrics/") == .notFound)
        #expect(route(Self.multi, "GET", "/metrics") == .processMetrics)
        #expect(route(Self.multi, "GET", "/probe", query: ["target": "a"], header: "1e300") == .probe(target: "a", budget: .milliseconds(3500)))
        #expect(route(Self.multi, "GET", "/probe", query: ["target": "a"], header: "2") == .probe(target: "a", budget: .milliseconds(1500)))
        #expect(route(Self.multi, "GET", "/probe") == .missingTarget)
        #expect(route(Self.multi, "GET", "/probe", query: ["target": ""]) == .missingTarget)
        #expect(route(Self.multi, "GET", "/probe", query: ["target": "b"]) == .unknownTarget("b"))
        #expect(route(Self.multi, "DELETE", "/probe", query: ["target": "a"]) == .methodNotAllowed)
    }

    @Test func everyRouteButAScrapeIsAnsweredWithoutATarget() {
        let long = String(repeating: "<x>", count: 1000)
        let answer = Self.multi.immediateResponse(.unknownTarget(long))
        #expect(answer?.status == 400)
        #expect(answer.map { String(decoding: $0.body, as: UTF8.self) } == "unknown target \"\(long.prefix(100))\"; known: a\n")
        #expect(Self.multi.immediateResponse(.methodNotAllowed)?.status == 405)
        #expect(Self.multi.immediateResponse(.notFound)?.status == 404)
        #expect(Self.multi.immediateResponse(.probe(target: "a", budget: .zero)) == nil)
        #expect(Self.single.immediateResponse(.metrics(budget: .zero)) == nil)
    }
}
