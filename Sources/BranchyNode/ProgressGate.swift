import Synchronization

/// Holds a device run's lanes back while progress is reported: the collector closes the gate around
/// each `progress` call, and a lane passes it before starting a sample, so that no sample starts while
/// a report runs (a caller may act on progress, say stop a node, before the next sample goes out).
final class ProgressGate: Sendable {
    private let state = Mutex<(closed: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    /// Runs `body` with the gate closed.
    func closed(_ body: () -> Void) {
        state.withLock { $0.closed = true }
        body()
        let waiting = state.withLock { s in
            s.closed = false
            defer { s.waiting = [] }
            return s.waiting
        }
        for lane in waiting { lane.resume() }
    }

    /// Returns at once while the gate is open; else when it opens.
    func pass() async {
        guard state.withLock({ $0.closed }) else { return }
        await withCheckedContinuation { (lane: CheckedContinuation<Void, Never>) in
            let wait = state.withLock { s in
                if s.closed { s.waiting.append(lane) }
                return s.closed
            }
            if !wait { lane.resume() }
        }
    }
}
