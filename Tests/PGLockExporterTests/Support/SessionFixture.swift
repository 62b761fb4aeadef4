@testable import PGLockExporter

extension Session {
    /// A session for the pure tests: a client backend of user `app` in database `app`, idle,
    /// with a start time and a state change (so it can be named), unless the test says otherwise.
    static func fixture(
        pid: Int32, datname: String? = "app", usename: String? = "app", applicationName: String = "",
        clientAddr: String = "local", backendType: String? = "client backend", state: String? = "idle",
        stateSeconds: Double? = 0, transactionSeconds: Double? = nil, waitingOnLock: Bool = false,
        blockedBy: [Int32] = [], lockWaitSeconds: Double? = nil,
        backendStart: String? = "2026-12-04 08:00:00+00", stateChange: String? = "2026-12-04 08:00:01+00", query: String? = nil
    ) -> Session {
        Session(
            pid: pid, datname: datname, usename: usename, applicationName: applicationName, clientAddr: clientAddr,
            backendType: backendType, state: state, stateSeconds: stateSeconds, transactionSeconds: transactionSeconds,
            waitingOnLock: waitingOnLock, blockedBy: blockedBy, lockWaitSeconds: lockWaitSeconds, backendStart: backendStart,
            stateChange: stateChange, query: query)
    }
}
