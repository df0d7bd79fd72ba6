import Synchronization

/// Holds a device run's lanes back while progress is reported: the collector closes the gate around
/// its `progress` calls, and a lane passes it before starting a sample, so that no sample starts while
/// a report runs (a caller may act on progress, say stop a node, before the next sample goes out).
final class ProgressGate: Sendable {
    /// Read without the lock on the lanes' fast path.
    private let isClosed = Atomic<Bool>(false)
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])

    /// Runs `body` with the gate closed.
    func closed(_ body: () -> Void) {
        waiting.withLock { _ in isClosed.store(true, ordering: .sequentiallyConsistent) }
        body()
        let lanes = waiting.withLock { w in
            isClosed.store(false, ordering: .sequentiallyConsistent)
            defer { w = [] }
            return w
        }
        for lane in lanes { lane.resume() }
    }

    /// Returns at once while the gate is open; else when it opens.
    func pass() async {
        guard isClosed.load(ordering: .sequentiallyConsistent) else { return }
        await withCheckedContinuation { (lane: CheckedContinuation<Void, Never>) in
            let wait = waiting.withLock { w in
                let closed = isClosed.load(ordering: .sequentiallyConsistent)
                if closed { w.append(lane) }
                return closed
            }
            if !wait { lane.resume() }
        }
    }
}
