import Dispatch

/// When each sample of a device run may start: with a rate (samples per second), sample `i` no earlier
/// than `i / rate` seconds after the run began, as frames from a camera arrive; without one, at once.
struct SamplePace: Sendable {
    let rate: Double?
    /// When the run began (uptime ns).
    let origin = DispatchTime.now().uptimeNanoseconds

    /// Suspends the calling task until sample `i` is due.
    func wait(for i: Int) async {
        guard let rate else { return }
        let due = origin + UInt64(Double(i) / rate * 1e9)
        let now = DispatchTime.now().uptimeNanoseconds
        guard due > now else { return }
        try? await Task.sleep(nanoseconds: due - now)
    }

    /// Whether sample `i` is due now (always, without a rate).
    func isDue(_ i: Int) -> Bool {
        guard let rate else { return true }
        return origin + UInt64(Double(i) / rate * 1e9) <= DispatchTime.now().uptimeNanoseconds
    }

    /// Seconds since the run began.
    func secondsSinceStart() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds &- origin) / 1e9
    }
}
