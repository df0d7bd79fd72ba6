import Testing
@testable import BranchyBatching

/// The dynamic batcher's rules, driven in memory with a made-up clock (nanoseconds).
@Suite struct BatchQueueTests {
    typealias Queue = BatchQueue<Int>

    static func batch(_ step: Queue.Step) -> [Int]? {
        if case .run(let items) = step { return items }
        return nil
    }

    @Test func aLoneRequestRunsAtTheEndOfItsBurstWithoutWaitingTheDelay() {
        var q = Queue(maxBatch: 8, maxDelayNanos: 1_000_000)
        guard case .checkAtEndOfBurst = q.arrive(1, now: 0) else { Issue.record("no end-of-burst check asked for"); return }
        #expect(Self.batch(q.burstEnded(now: 10)) == [1])
        #expect(q.running)
        guard case .none = q.batchFinished(now: 20) else { Issue.record("nothing waits, yet a step was asked for"); return }
        #expect(!q.running)
    }

    @Test func requestsOfOneBurstShareABatch() {
        var q = Queue(maxBatch: 8, maxDelayNanos: 1_000_000)
        guard case .checkAtEndOfBurst = q.arrive(1, now: 0) else { Issue.record("no end-of-burst check"); return }
        for i in 2...5 {
            guard case .none = q.arrive(i, now: Int64(i)) else { Issue.record("a second end-of-burst check for \(i)"); return }
        }
        #expect(Self.batch(q.burstEnded(now: 10)) == [1, 2, 3, 4, 5])
    }

    @Test func aBatchClosesAtMaxBatchAtOnce() {
        var q = Queue(maxBatch: 3, maxDelayNanos: 1_000_000)
        _ = q.arrive(1, now: 0)
        _ = q.arrive(2, now: 1)
        #expect(Self.batch(q.arrive(3, now: 2)) == [1, 2, 3])
        // The rest of the burst waits for the running batch; the end of the burst changes nothing.
        guard case .none = q.arrive(4, now: 3) else { Issue.record("ran while a batch was running"); return }
        guard case .none = q.burstEnded(now: 4) else { Issue.record("ran while a batch was running"); return }
        #expect(q.count == 1)
    }

    @Test func neverMoreThanMaxBatchAndOldestFirst() {
        var q = Queue(maxBatch: 4, maxDelayNanos: 0)
        _ = q.arrive(0, now: 0)
        #expect(Self.batch(q.burstEnded(now: 1)) == [0])
        for i in 1...10 { _ = q.arrive(i, now: Int64(1 + i)) }  // while busy
        #expect(Self.batch(q.batchFinished(now: 100)) == [1, 2, 3, 4])
        #expect(Self.batch(q.batchFinished(now: 200)) == [5, 6, 7, 8])
        #expect(Self.batch(q.batchFinished(now: 300)) == [9, 10])
        guard case .none = q.batchFinished(now: 400) else { Issue.record("ran an empty batch"); return }
    }

    @Test func requestsThatArrivedWhileBusyWaitAtMostTheDelayForCompany() {
        var q = Queue(maxBatch: 8, maxDelayNanos: 1_000)
        _ = q.arrive(0, now: 0)
        #expect(Self.batch(q.burstEnded(now: 1)) == [0])
        _ = q.arrive(1, now: 500)  // while busy
        // The stage is free at 600: sample 1 has waited 100 ns of its 1,000.
        guard case .wake(let due) = q.batchFinished(now: 600) else { Issue.record("did not ask for a timer"); return }
        #expect(due == 1_500)
        _ = q.arrive(2, now: 700)
        guard case .none = q.burstEnded(now: 701) else { Issue.record("closed before the delay"); return }
        #expect(Self.batch(q.timerFired(due: 1_500, now: 1_500)) == [1, 2])
    }

    @Test func theDelayClosesNoEarlierThanAskedAndFullBatchesDoNotWait() {
        var q = Queue(maxBatch: 2, maxDelayNanos: 1_000)
        _ = q.arrive(0, now: 0)
        _ = q.burstEnded(now: 1)
        _ = q.arrive(1, now: 10)
        guard case .wake(let due) = q.batchFinished(now: 20) else { Issue.record("did not ask for a timer"); return }
        // A timer that fires for another due time is stale.
        guard case .none = q.timerFired(due: due - 1, now: due - 1) else { Issue.record("a stale timer ran a batch"); return }
        // Reaching maxBatch closes the batch before the delay.
        #expect(Self.batch(q.arrive(2, now: 30)) == [1, 2])
        guard case .none = q.timerFired(due: due, now: due) else { Issue.record("ran with nothing waiting"); return }
    }

    @Test func aWaitLongerThanTheDelayRunsAsSoonAsTheStageIsFree() {
        var q = Queue(maxBatch: 8, maxDelayNanos: 1_000)
        _ = q.arrive(0, now: 0)
        _ = q.burstEnded(now: 1)
        _ = q.arrive(1, now: 10)
        #expect(Self.batch(q.batchFinished(now: 5_000)) == [1])
    }

    @Test func zeroDelayNeverWaits() {
        var q = Queue(maxBatch: 8, maxDelayNanos: 0)
        _ = q.arrive(0, now: 0)
        _ = q.burstEnded(now: 1)
        _ = q.arrive(1, now: 10)
        #expect(Self.batch(q.batchFinished(now: 10)) == [1])
    }

    @Test func histogramBucketsByPowersOfTwo() {
        var h = BatchHistogram()
        for size in [1, 1, 2, 3, 4, 7, 8, 64, 100] { h.record(size: size) }
        #expect(h.counts == [2, 2, 2, 1, 0, 0, 2])
        #expect(h.batches == 9)
        #expect(h.samples == 190)
        #expect(BatchHistogram.label(0) == "1")
        #expect(BatchHistogram.label(3) == "8-15")
        #expect(h.summary == "batches by size: 1: 2, 2-3: 2, 4-7: 2, 8-15: 1, 64-127: 2 (9 batches, 190 samples, mean 21.11)")
        #expect(BatchHistogram().summary == "batches by size: none (0 batches, 0 samples, mean 0.0)")
    }

    @Test func histogramTimesTheStagePerSample() {
        var h = BatchHistogram()
        h.record(size: 1, nanos: 90_000)
        h.record(size: 2, nanos: 100_000)
        h.record(size: 3, nanos: 200_000)
        #expect(h.timing == "stage time per sample by batch size: 1: 90 µs, 2-3: 60 µs")
        #expect(BatchHistogram().timing == "stage time per sample by batch size: none")
    }
}
