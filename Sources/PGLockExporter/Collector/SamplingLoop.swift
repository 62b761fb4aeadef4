import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Samples every target every `--sample.interval` (`TargetSample`) from one thread, whatever the
/// number of targets: libpq runs non-blocking, so the loop sends each target's statements and
/// `poll()`s all their sockets at once. Each sample has its own deadline (`Collector.sampleBudget`):
/// a target whose server hangs (SIGSTOP, a network that drops packets) keeps only its own sample
/// in flight until then, and no other target's sample waits for it.
///
/// Connecting blocks (libpq resolves host names inside `PQconnectStartParams`, and the session's
/// set-up runs to completion), so connects go to a fixed pool of connector threads
/// (`connectorCount`); they happen at start and after a failure. A target that hangs while being
/// connected holds one connector for at most its connect timeout; the samples of targets that
/// are connected never wait for a connector. Threads: the loop and the connectors, however many
/// targets there are (`make bench`: 1,000 targets).
///
/// Targets start spread over the first interval, so a thousand of them do not all send at once.
public final class SamplingLoop: Sendable {
    /// Connector threads.
    public static let connectorCount = 4

    private let stopped = Atomic<Bool>(false)
    private let exited = DispatchSemaphore(value: 0)
    private let wake: WakePipe
    private let connectors: ConnectorQueue

    /// `interval` is raised to at least 10 ms.
    public init(collectors: [Collector], interval: TimeSpan) {
        let interval = max(interval, .milliseconds(10)).duration
        wake = WakePipe()
        connectors = ConnectorQueue(wake: wake)
        for _ in 0..<Self.connectorCount {
            DetachedThread.start { [connectors] in connectors.work() }
        }
        DetachedThread.start { [self] in
            run(collectors, every: interval)
            exited.signal()
        }
    }

    /// Stops sampling: samples in flight are abandoned (their statements cancelled). Waits up to
    /// `waitingAtMost` for the loop to leave; false if it did not.
    @discardableResult
    public func stop(waitingAtMost limit: TimeSpan = .seconds(2)) -> Bool {
        guard !stopped.exchange(true, ordering: .relaxed) else { return true }
        connectors.stop()
        wake.signal()
        return exited.wait(timeout: .now() + .nanoseconds(Int(limit.nanoseconds))) == .success
    }

    private struct Slot {
        var due: ContinuousClock.Instant
        var sample: TargetSample?
        var connecting = false
    }

    private func run(_ collectors: [Collector], every interval: Duration) {
        let start = ContinuousClock.now
        var slots = collectors.indices.map { index in
            Slot(due: start + interval * (Double(index) / Double(max(1, collectors.count))))
        }
        var fds: [pollfd] = []
        var polled: [Int] = []
        while !stopped.load(ordering: .relaxed) {
            // Connections the connectors opened (or failed to).
            for (index, sample) in connectors.takeResults() {
                slots[index].connecting = false
                if let sample, sample.start() { slots[index].sample = sample }
            }
            var now = ContinuousClock.now
            var nextWake = now + .milliseconds(100)
            for index in slots.indices {
                if let sample = slots[index].sample {
                    if sample.deadline.hasPassed {
                        sample.timeOut()
                        slots[index].sample = nil
                    } else {
                        nextWake = min(nextWake, sample.deadline.instant)
                    }
                } else if !slots[index].connecting {
                    if slots[index].due <= now {
                        // After a slow sample: no burst to catch up.
                        slots[index].due = max(slots[index].due + interval, now)
                        switch collectors[index].startSample() {
                        case .skipped: break
                        case .needsConnection(let lease):
                            slots[index].connecting = true
                            connectors.submit(index: index, collector: collectors[index], lease: lease)
                        case .ready(let sample):
                            if sample.start() { slots[index].sample = sample }
                        }
                    }
                    nextWake = min(nextWake, slots[index].due)
                }
            }
            // Wait for any socket, the wake pipe, the next due sample or deadline, and at most
            // 100 ms: every in-flight sample then reads what arrived even when poll() saw
            // nothing, so bytes a TLS layer already decrypted never stall it.
            fds.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0))
            for index in slots.indices {
                guard let sample = slots[index].sample else { continue }
                fds.append(pollfd(fd: sample.socket, events: Int16(POLLIN) | (sample.wantsWrite ? Int16(POLLOUT) : 0), revents: 0))
                polled.append(index)
            }
            now = ContinuousClock.now
            let milliseconds = nextWake > now ? Int32(min(100, max(0, TimeSpan(clamping: nextWake - now).milliseconds))) : 0
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), milliseconds) }
            if ready > 0 && fds[0].revents != 0 { wake.drain() }
            let sliceOver = ready == 0
            for (position, index) in polled.enumerated() {
                guard let sample = slots[index].sample else { continue }
                if fds[position + 1].revents != 0 || sliceOver {
                    if sample.advance() { slots[index].sample = nil }
                }
            }
        }
        for index in slots.indices {
            slots[index].sample?.timeOut()
            slots[index].sample = nil
        }
    }
}

/// Connects for the loop on a fixed number of threads: requests in, samples (or nil) out, and
/// a byte on the wake pipe when one is ready.
private final class ConnectorQueue: Sendable {
    private struct Request: @unchecked Sendable {
        // Safe to send: the lease and collector pass from the loop to one connector and back.
        var index: Int
        var collector: Collector
        var lease: TargetConnection.Lease
    }

    private struct Result: @unchecked Sendable {
        // Safe to send: the sample is made on the connector and used on the loop only after.
        var index: Int
        var sample: TargetSample?
    }

    private let requests = Mutex<[Request]>([])
    private let results = Mutex<[Result]>([])
    private let waiting = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let wake: WakePipe

    init(wake: WakePipe) { self.wake = wake }

    func submit(index: Int, collector: Collector, lease: TargetConnection.Lease) {
        requests.withLock { $0.append(Request(index: index, collector: collector, lease: lease)) }
        waiting.signal()
    }

    func takeResults() -> [(Int, TargetSample?)] {
        results.withLock { taken in
            defer { taken.removeAll() }
            return taken.map { ($0.index, $0.sample) }
        }
    }

    func work() {
        while true {
            waiting.wait()
            if stopped.load(ordering: .relaxed) { return }
            guard let request = requests.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            let sample = request.collector.connectForSample(request.lease)
            results.withLock { $0.append(Result(index: request.index, sample: sample)) }
            wake.signal()
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        for _ in 0..<SamplingLoop.connectorCount { waiting.signal() }
    }
}

/// A pipe whose read end is in the loop's `poll()`: a byte written wakes it at once.
private final class WakePipe: Sendable {
    let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        _ = ends.withUnsafeMutableBufferPointer { pipe($0.baseAddress) }
        readEnd = ends[0]
        writeEnd = ends[1]
        for descriptor in ends {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
    }

    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)  // a full pipe already wakes the loop
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Closed only when the loop and every connector are done with it: a connector that
    /// finishes late must never write into a descriptor number reused by then.
    deinit {
        for descriptor in [readEnd, writeEnd] { _ = close(descriptor) }
    }
}
