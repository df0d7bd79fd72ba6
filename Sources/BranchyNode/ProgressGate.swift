import NIOConcurrencyHelpers

/// Holds a device run's lanes back while progress is reported: the collector closes the gate around
/// its `progress` calls, and a lane passes it before starting a sample, so that no sample starts while
/// a report runs (a caller may act on progress, say stop a node, before the next sample goes out).
final class ProgressGate: Sendable {
    private let state = NIOLockedValueBox((closed: false, waiting: [CheckedContinuation<Void, Never>]()))

    /// Runs `body` with the gate closed.
    func closed(_ body: () -> Void) {
        state.withLockedValue { $0.closed = true }
        body()
        let lanes = state.withLockedValue { s in
            s.closed = false
            defer { s.waiting = [] }
            return s.waiting
        }
        for lane in lanes { lane.resume() }
    }

    /// Returns at once while the gate is open; else when it opens.
    func pass() async {
        guard state.withLockedValue({ $0.closed }) else { return }
        await withCheckedContinuation { (lane: CheckedContinuation<Void, Never>) in
            let wait = state.withLockedValue { s in
                if s.closed { s.waiting.append(lane) }
                return s.closed
            }
            if !wait { lane.resume() }
        }
    }
}
