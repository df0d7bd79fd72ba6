/// Capped exponential backoff with full jitter, as a value: `next(random:)` gives the next
/// delay and `reset()` starts over after a success.
public struct Backoff: Sendable, Equatable {
    public var initialMillis: Int
    public var maxMillis: Int
    public private(set) var attempt = 0

    public init(initialMillis: Int = 100, maxMillis: Int = 5_000) {
        self.initialMillis = initialMillis
        self.maxMillis = maxMillis
    }

    /// The cap for the current attempt: initial · 2^attempt, at most `maxMillis`.
    public var ceilingMillis: Int { min(maxMillis, initialMillis << min(attempt, 20)) }

    /// Next delay in milliseconds: uniform in [ceiling/2, ceiling]; advances the attempt.
    public mutating func next(random: Double) -> Int {
        let c = ceilingMillis
        attempt += 1
        return c / 2 + Int(Double(c - c / 2) * min(max(random, 0), 1))
    }

    public mutating func reset() { attempt = 0 }
}
