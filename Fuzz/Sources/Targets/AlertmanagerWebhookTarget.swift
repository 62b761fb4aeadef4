import PGLockExporter

/// The Alertmanager webhook body, the remediator's only input from the network.
enum AlertmanagerWebhookTarget {
    static let target = FuzzTarget(name: "alertmanager-webhook") { bytes in
        do {
            let payload = try AlertmanagerWebhook.parse(bytes)
            for alert in payload.alerts { _ = alert.deliveryKey }
        } catch {
            FuzzCheck.oneLine(String(describing: error), "webhook")
        }
    }
}
