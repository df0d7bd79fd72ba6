@testable import BranchyLink
import Testing

@Suite struct BackoffTests {
    @Test func ceilingDoublesUpToTheCap() {
        var backoff = Backoff(initialMillis: 100, maxMillis: 5_000)
        var ceilings: [Int] = []
        for _ in 0..<9 {
            ceilings.append(backoff.ceilingMillis)
            _ = backoff.next(random: 0.5)
        }
        #expect(ceilings == [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000])
        #expect(backoff.attempt == 9)
    }

    @Test func defaultsAreOneHundredMillisecondsToFiveSeconds() {
        let backoff = Backoff()
        #expect(backoff.initialMillis == 100)
        #expect(backoff.maxMillis == 5_000)
        #expect(backoff.attempt == 0)
        #expect(backoff.ceilingMillis == 100)
    }

    @Test(arguments: [0.0, 0.25, 0.5, 0.999, 1.0])
    func delayLiesBetweenHalfTheCeilingAndTheCeiling(random: Double) {
        var backoff = Backoff(initialMillis: 100, maxMillis: 5_000)
        for _ in 0..<12 {
            let ceiling = backoff.ceilingMillis
            let delay = backoff.next(random: random)
            #expect(delay >= ceiling / 2 && delay <= ceiling, "delay \(delay) for ceiling \(ceiling)")
        }
    }

    @Test func randomZeroGivesHalfTheCeilingAndOneGivesTheCeiling() {
        var low = Backoff(initialMillis: 100, maxMillis: 5_000)
        var high = low
        #expect((0..<8).map { _ in low.next(random: 0) } == [50, 100, 200, 400, 800, 1_600, 2_500, 2_500])
        #expect((0..<8).map { _ in high.next(random: 1) } == [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000])
    }

    @Test func randomOutsideTheUnitIntervalIsClamped() {
        var a = Backoff(initialMillis: 100, maxMillis: 5_000)
        var b = a
        #expect(a.next(random: -3) == 50)
        #expect(b.next(random: 7) == 100)
    }

    @Test func oddCeilingsStayInRange() {
        var backoff = Backoff(initialMillis: 3, maxMillis: 7)
        // ceilings 3, 6, 7, 7: [1, 3], [3, 6], [3, 7], [3, 7]
        for (ceiling, low) in [(3, 1), (6, 3), (7, 3), (7, 3)] {
            #expect(backoff.ceilingMillis == ceiling)
            var copy = backoff
            #expect(copy.next(random: 0) == low)
            #expect(backoff.next(random: 1) == ceiling)
        }
    }

    @Test func resetStartsOver() {
        var backoff = Backoff(initialMillis: 100, maxMillis: 5_000)
        for _ in 0..<5 { _ = backoff.next(random: 0.3) }
        #expect(backoff.ceilingMillis == 3_200)
        backoff.reset()
        #expect(backoff.attempt == 0)
        #expect(backoff.ceilingMillis == 100)
        #expect(backoff.next(random: 1) == 100)
        #expect(backoff.ceilingMillis == 200)
    }

    @Test func manyAttemptsNeitherOverflowNorPassTheCap() {
        var backoff = Backoff(initialMillis: 100, maxMillis: Int.max)
        for _ in 0..<200 { _ = backoff.next(random: 1) }
        #expect(backoff.ceilingMillis == 100 << 20)
        var capped = Backoff(initialMillis: 250, maxMillis: 30_000)
        for _ in 0..<1_000 {
            let d = capped.next(random: 1)
            #expect(d <= 30_000)
        }
        #expect(capped.next(random: 0) == 15_000)
    }
}
