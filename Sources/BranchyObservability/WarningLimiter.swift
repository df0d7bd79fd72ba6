import NIOConcurrencyHelpers
import NIOCore

/// Rate-limits warnings per source (a peer's address, or a kind of event), so that a peer
/// that misbehaves in a loop cannot flood the log: at most `burst` lines per source per
/// `window`; the first line of the next window says how many were left out.
public final class WarningLimiter: Sendable {
    private struct Bucket {
        var windowStart: NIODeadline
        var logged: Int
        var suppressed: Int
    }

    public let burst: Int
    public let window: TimeAmount
    /// Sources remembered at once; beyond it, the table starts over.
    public let capacity: Int
    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    public init(burst: Int = 5, window: TimeAmount = .seconds(10), capacity: Int = 4_096) {
        self.burst = burst
        self.window = window
        self.capacity = capacity
    }

    /// Whether a warning from `source` may be logged now, and how many from it were left out
    /// since the last one logged.
    public func admit(_ source: String, now: NIODeadline = .now()) -> (log: Bool, suppressed: Int) {
        buckets.withLockedValue { table in
            if table[source] == nil && table.count >= capacity { table.removeAll(keepingCapacity: true) }
            var b = table[source] ?? Bucket(windowStart: now, logged: 0, suppressed: 0)
            if now - b.windowStart >= window {
                b.windowStart = now
                b.logged = 0
            }
            guard b.logged < burst else {
                b.suppressed += 1
                table[source] = b
                return (false, 0)
            }
            b.logged += 1
            let suppressed = b.suppressed
            b.suppressed = 0
            table[source] = b
            return (true, suppressed)
        }
    }
}
