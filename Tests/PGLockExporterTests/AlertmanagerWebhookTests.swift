import Testing

@testable import PGLockExporter

@Suite struct AlertmanagerWebhookTests {
    static let firing = """
        {"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing","receiver":"remediator",
         "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
         "alerts":[{"status":"firing","labels":{"alertname":"PostgresBlockerIdleInTransaction","datname":"app","pid":"42"},
                    "annotations":{"summary":"x"},"startsAt":"2026-11-26T09:00:00Z","endsAt":"0001-01-01T00:00:00Z",
                    "generatorURL":"http://prom","fingerprint":"0123abcd","somethingNew":true}]}
        """

    @Test func parsesVersion4AndToleratesUnknownFields() throws {
        let payload = try AlertmanagerWebhook.parse(Array(Self.firing.utf8))
        #expect(payload.status == "firing")
        #expect(payload.alerts.count == 1)
        #expect(payload.alerts[0].isFiring)
        #expect(payload.alerts[0].labels["datname"] == "app")
        #expect(payload.alerts[0].deliveryKey == "0123abcd@2026-11-26T09:00:00Z")
    }

    @Test(arguments: [
        ("{\"version\":\"3\",\"status\":\"firing\",\"alerts\":[]}", "unsupported Alertmanager webhook version \"3\" (expected \"4\")"),
        ("{\"version\":\"4\",\"alerts\":[]}", "invalid Alertmanager webhook: missing field \"status\""),
        ("{\"version\":\"4\",\"status\":\"firing\",\"alerts\":{}}", "invalid Alertmanager webhook: wrong type at \"alerts\""),
        ("not json", "invalid Alertmanager webhook: the body is not valid JSON"),
        ("", "invalid Alertmanager webhook: the body is not valid JSON"),
    ])
    func rejectsWithOneLine(body: String, message: String) {
        let error = #expect(throws: AlertmanagerWebhook.ParseError.self) { try AlertmanagerWebhook.parse(Array(body.utf8)) }
        #expect(error?.description == message)
    }

    @Test func keyWithoutFingerprintUsesSortedLabels() throws {
        let body = """
            {"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"b":"2","a":"1"},"startsAt":"t"}]}
            """
        #expect(try AlertmanagerWebhook.parse(Array(body.utf8)).alerts[0].deliveryKey == "a=1,b=2@t")
    }

    /// Generated inputs: random mutations of a real payload and random bytes never crash the
    /// parser; every outcome is a payload or a one-line error.
    /// Found by the alertmanager-webhook fuzz target (Fuzz/corpus/alertmanager-webhook/
    /// regression-control-byte-in-key): the error quoted key names and the version from the body
    /// as they were, so a CR broke the one-line error that the 400 answer and the log carry.
    @Test func errorsQuoteBodyTextTerminalSafe() {
        func message(_ body: String) -> String {
            do { _ = try AlertmanagerWebhook.parse(Array(body.utf8)) } catch { return error.description }
            return "accepted"
        }
        #expect(message(#"{"version":"4","status":"firing","alerts":[{"status":"firing","startsAt":"x","labels":{"a\rb":1}}]}"#)
            == #"invalid Alertmanager webhook: wrong type at "alerts.0.labels.a\x0db""#)
        #expect(message(#"{"version":"4\n\u001b[2J","status":"firing","alerts":[]}"#)
            == #"unsupported Alertmanager webhook version "4\x0a\x1b[2J" (expected "4")"#)
    }

    @Test func mutatedPayloadsNeverCrash() {
        let valid = Array(Self.firing.utf8)
        var generator = SystemRandomNumberGenerator()
        var parsed = 0
        for round in 0..<3000 {
            var bytes = valid
            if round % 10 == 0 {
                bytes = (0..<Int.random(in: 0...512, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                for _ in 0..<Int.random(in: 1...8, using: &generator) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<4, using: &generator) {
                    case 0: bytes[at] = UInt8.random(in: 0...255, using: &generator)
                    case 1: bytes.remove(at: at)
                    case 2: bytes.insert(Array("{}[]\",:0aé".utf8).randomElement(using: &generator)!, at: at)
                    default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 40)], at: at)
                    }
                }
            }
            do {
                _ = try AlertmanagerWebhook.parse(bytes)
                parsed += 1
            } catch {
                #expect(!error.description.contains("\n"))
                #expect(error.description.hasPrefix("invalid Alertmanager webhook") || error.description.hasPrefix("unsupported"))
            }
        }
        #expect(parsed > 0)
    }

    @Test func constantTimeCompare() {
        #expect(ConstantTime.equal("Bearer abc", "Bearer abc"))
        #expect(!ConstantTime.equal("Bearer abd", "Bearer abc"))
        #expect(!ConstantTime.equal("Bearer ab", "Bearer abc"))
        #expect(!ConstantTime.equal("", "Bearer abc"))
    }
}
