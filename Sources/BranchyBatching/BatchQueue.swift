/// The dynamic batcher's rules, as a value type with no clock and no threads of its own: the
/// caller feeds it events (a sample arrived, the current burst of input is over, a timer fired,
/// the running batch finished) with the time they happened, and carries out the step it returns.
///
/// A batch closes, whichever comes first:
///   - when `maxBatch` samples wait;
///   - when the stage is idle (no batch running) and nothing else waits to be read (the end of
///     the input burst), provided the oldest waiting sample arrived while the stage was idle and
///     no other sample waited: a lone request never waits for company;
///   - when the oldest waiting sample has waited `maxDelayNanos` (this applies to samples that
///     arrived while a batch was running: once the stage is free, they wait at most that long
///     from their arrival for more samples to join them).
/// At most one batch runs at a time; a batch holds at most `maxBatch` samples, oldest first.
public struct BatchQueue<Item> {
    /// What the caller must do next.
    public enum Step {
        /// Nothing for now.
        case none
        /// Run these samples as one batch, then report `batchFinished`.
        case run([Item])
        /// Call `burstEnded` once the input that is ready to be read has been read.
        case checkAtEndOfBurst
        /// Call `timerFired(due:now:)` at `due` (nanoseconds, on the caller's clock).
        case wake(due: Int64)
    }

    private struct Waiting {
        public var item: Item
        public var arrival: Int64
        /// Arrived while no batch ran and no other sample waited.
        public var alone: Bool
    }

    public let maxBatch: Int
    public let maxDelayNanos: Int64
    private var waiting: [Waiting] = []
    private var head = 0
    /// True while a batch runs.
    private(set) var running = false
    private var burstCheckPending = false
    private var timerDue: Int64?

    public init(maxBatch: Int, maxDelayNanos: Int64) {
        self.maxBatch = max(1, maxBatch)
        self.maxDelayNanos = max(0, maxDelayNanos)
    }

    /// Samples waiting for a batch.
    public var count: Int { waiting.count - head }

    /// A sample arrived at `now`.
    public mutating func arrive(_ item: Item, now: Int64) -> Step {
        waiting.append(Waiting(item: item, arrival: now, alone: !running && count == 0))
        if running { return .none }
        if count >= maxBatch { return take(now: now) }
        if burstCheckPending { return .none }
        burstCheckPending = true
        return .checkAtEndOfBurst
    }

    /// The input that was ready to be read when `checkAtEndOfBurst` was asked for has been read.
    public mutating func burstEnded(now: Int64) -> Step {
        burstCheckPending = false
        return poll(now: now)
    }

    /// The timer asked for with `wake(due:)` fired.
    public mutating func timerFired(due: Int64, now: Int64) -> Step {
        guard timerDue == due else { return .none }  // superseded
        timerDue = nil
        return poll(now: now)
    }

    /// The running batch finished.
    public mutating func batchFinished(now: Int64) -> Step {
        running = false
        return poll(now: now)
    }

    /// With the stage free: the next batch if one should close now, else when to look again.
    private mutating func poll(now: Int64) -> Step {
        guard !running, count > 0 else { return .none }
        let oldest = waiting[head]
        if count >= maxBatch || oldest.alone || now - oldest.arrival >= maxDelayNanos {
            return take(now: now)
        }
        let due = oldest.arrival + maxDelayNanos
        if timerDue == due { return .none }
        timerDue = due
        return .wake(due: due)
    }

    private mutating func take(now: Int64) -> Step {
        let n = min(count, maxBatch)
        let batch = waiting[head..<(head + n)].map(\.item)
        head += n
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
        // Whoever is left came in the same burst or while busy: not alone any more.
        for i in head..<waiting.count { waiting[i].alone = false }
        running = true
        return .run(batch)
    }
}

/// Counts batches by size in power-of-two buckets: 1, 2–3, 4–7, 8–15, …
public struct BatchHistogram: Sendable, Equatable, Codable {
    /// `counts[k]` batches had between 2^k and 2^(k+1) − 1 samples.
    public private(set) var counts: [Int] = []
    /// `samplesIn[k]` and `nanos[k]`: samples in the batches of bucket `k`, and the stage's time on them.
    public private(set) var samplesIn: [Int] = []
    public private(set) var nanos: [UInt64] = []
    public private(set) var batches = 0
    public private(set) var samples = 0

    public init() {}

    /// A batch of `size` samples that took the stage `nanos` nanoseconds.
    public mutating func record(size: Int, nanos time: UInt64 = 0) {
        guard size > 0 else { return }
        let bucket = Int.bitWidth - 1 - size.leadingZeroBitCount
        if counts.count <= bucket {
            let more = bucket + 1 - counts.count
            counts += [Int](repeating: 0, count: more)
            samplesIn += [Int](repeating: 0, count: more)
            nanos += [UInt64](repeating: 0, count: more)
        }
        counts[bucket] += 1
        samplesIn[bucket] += size
        nanos[bucket] += time
        batches += 1
        samples += size
    }

    /// One line: "stage time per sample by batch size: 1: 85 µs, 2-3: 61 µs".
    public var timing: String {
        let buckets = counts.indices.filter { counts[$0] > 0 }.map { k in
            "\(Self.label(k)): \(Int((Double(nanos[k]) / Double(samplesIn[k]) / 1000).rounded())) µs"
        }
        return "stage time per sample by batch size: " + (buckets.isEmpty ? "none" : buckets.joined(separator: ", "))
    }

    /// The label of bucket `k`: "1", "2-3", "4-7", …
    public static func label(_ k: Int) -> String {
        k == 0 ? "1" : "\(1 << k)-\((1 << (k + 1)) - 1)"
    }

    /// One line: "batches by size: 1: 120, 2-3: 14, 4-7: 3 (137 batches, 160 samples, mean 1.17)".
    public var summary: String {
        let buckets = counts.enumerated().filter { $0.element > 0 }.map { "\(Self.label($0.offset)): \($0.element)" }
        let mean = batches == 0 ? 0 : Double(samples) / Double(batches)
        let body = buckets.isEmpty ? "none" : buckets.joined(separator: ", ")
        return "batches by size: \(body) (\(batches) batches, \(samples) samples, mean \((mean * 100).rounded() / 100))"
    }
}
