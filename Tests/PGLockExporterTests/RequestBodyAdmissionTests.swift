import PropertyBased
import Testing

@testable import PGLockExporter

/// Bodies only where a body is expected, and never more than the caps (finding 6 of issue 19).
@Suite struct RequestBodyAdmissionTests {
    @Test func theHeadersSayWhatBodyComes() {
        #expect(AnnouncedBody(headers: [:]) == .none)
        #expect(AnnouncedBody(headers: ["content-length": "0"]) == .none)
        #expect(AnnouncedBody(headers: ["content-length": "000"]) == .none)
        #expect(AnnouncedBody(headers: ["content-length": "1048576"]) == .length(1_048_576))
        #expect(AnnouncedBody(headers: ["content-length": " 12\t"]) == .length(12))
        #expect(AnnouncedBody(headers: ["transfer-encoding": "chunked"]) == .chunked)
        #expect(AnnouncedBody(headers: ["transfer-encoding": "gzip, chunked", "content-length": "5"]) == .chunked)
        for invalid in ["", " ", "-1", "+1", "1.0", "1e3", "0x10", "١٢", "1, 1", "99999999999999999999999", "abc"] {
            #expect(AnnouncedBody(headers: ["content-length": invalid]) == .invalid, "\(invalid)")
        }
    }

    @Test func onlyARouteThatTakesABodyReadsOneWithinTheCap() {
        let cap = 1 << 20
        #expect(BodyAdmission.decide(.none, acceptsBody: false, maxBodyBytes: cap) == .noBody)
        #expect(BodyAdmission.decide(.none, acceptsBody: true, maxBodyBytes: cap) == .noBody)
        #expect(BodyAdmission.decide(.length(1), acceptsBody: false, maxBodyBytes: cap) == .refuse(status: 413))
        #expect(BodyAdmission.decide(.chunked, acceptsBody: false, maxBodyBytes: cap) == .refuse(status: 413))
        #expect(BodyAdmission.decide(.invalid, acceptsBody: true, maxBodyBytes: cap) == .refuse(status: 400))
        #expect(BodyAdmission.decide(.length(cap), acceptsBody: true, maxBodyBytes: cap) == .read(reserve: cap))
        #expect(BodyAdmission.decide(.length(cap + 1), acceptsBody: true, maxBodyBytes: cap) == .refuse(status: 413))
        #expect(BodyAdmission.decide(.chunked, acceptsBody: true, maxBodyBytes: cap) == .read(reserve: nil))
        #expect(BodyAdmission.response(status: 503).headers.contains { $0 == ("Retry-After", "5") })
    }

    @Test func theSharedBudgetNeverBooksMoreThanItsCapacity() {
        let budget = BodyBudget(capacity: 8 << 20)
        var granted = 0
        for _ in 0..<60 where budget.reserve(1 << 20) { granted += 1 }
        #expect(granted == 8)
        #expect(budget.inUse == 8 << 20)
        #expect(!budget.reserve(1))
        #expect(!budget.reserve(-1))
        #expect(!budget.reserve(.max))
        budget.release(1 << 20)
        #expect(budget.reserve(1 << 20))
        // A body gives its booking back when it ends.
        do {
            let body = RequestBody(budget: BodyBudget(capacity: 100))
            #expect(body.reserve(upTo: 60))
            #expect(body.reserve(upTo: 40))  // already booked
            #expect(!body.reserve(upTo: 101))
            #expect(body.budget.inUse == 60)
            let shared = body.budget
            body.drop()
            #expect(shared.inUse == 0)
        }
        let shared = BodyBudget(capacity: 100)
        do {
            let body = RequestBody(budget: shared)
            #expect(body.reserve(upTo: 70))
        }
        #expect(shared.inUse == 0)
    }

    /// Any headers: the decision is one of the four, and a route that takes no body never reads one.
    @Test func anyHeadersGiveADecisionAndNoBodyWhereNoneIsTaken() async {
        let value = Gen.element(of: Array("0123456789 -+.,xeEchunkd\t")).compactMap { $0 }.string(of: 0...22)
        await propertyCheck(count: 3000, input: value, value, Gen.bool()) { length, coding, accepts in
            var headers = ["content-length": length]
            if coding.count % 3 == 0 { headers["transfer-encoding"] = coding }
            let decision = BodyAdmission.decide(AnnouncedBody(headers: headers), acceptsBody: accepts, maxBodyBytes: 1 << 20)
            if !accepts, case .read = decision { Issue.record("read a body on a route that takes none: \(headers)") }
            if case .read(let reserve?) = decision { #expect(reserve > 0 && reserve <= 1 << 20) }
        }
    }

    @Test func theRemediatorsOtherRoutesRefuseFromTheHeaders() {
        #expect(WebhookService.acceptsBody(HTTPRequest(method: "POST", path: "/webhook/alertmanager")))
        #expect(!WebhookService.acceptsBody(HTTPRequest(method: "POST", path: "/metrics")))
        #expect(!WebhookService.acceptsBody(HTTPRequest(method: "PUT", path: "/webhook/alertmanager")))
        #expect(!WebhookService.acceptsBody(HTTPRequest(method: "GET", path: "/metrics")))
    }

    @Test func theExportersPreflightAnswersOnlyWhatNoRouteTakes() {
        let routes = ExporterRouteTests.single
        #expect(routes.preflight(HTTPRequest(method: "POST", path: "/metrics"))?.status == 405)
        #expect(routes.preflight(HTTPRequest(method: "GET", path: "/nope"))?.status == 404)
        #expect(routes.preflight(HTTPRequest(method: "GET", path: "/metrics")) == nil)
        #expect(routes.preflight(HTTPRequest(method: "GET", path: "/")) == nil)
        let multi = ExporterRouteTests.multi
        #expect(multi.preflight(HTTPRequest(method: "GET", path: "/probe", query: ["target": "zzz"]))?.status == 400)
        #expect(multi.preflight(HTTPRequest(method: "GET", path: "/probe", query: ["target": "a"])) == nil)
    }
}
