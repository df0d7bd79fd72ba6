import Foundation
import Testing
@testable import BranchyTraining

@Suite struct TrainingConfigTests {
    func config(epochs: Int = 10, lr: Float = 0.002, warmup: Float = 0.5, final: Float = 0.01) -> TrainingConfig {
        var c = TrainingConfig()
        c.epochs = epochs; c.learningRate = lr; c.warmupEpochs = warmup; c.finalLearningRateFraction = final
        return c
    }

    func close(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 1e-6 * max(1, abs(b)) }

    @Test func warmUpIsLinearWithAFloor() {
        let c = config()
        // The first batch starts at 5% of the peak rather than zero.
        #expect(close(c.learningRate(at: 0), 0.002 * 0.05))
        #expect(close(c.learningRate(at: 0.01), 0.002 * 0.05))
        #expect(close(c.learningRate(at: 0.1), 0.002 * 0.2))
        #expect(close(c.learningRate(at: 0.25), 0.002 * 0.5))
        #expect(c.learningRate(at: 0.4) < 0.002)
    }

    @Test func cosineEndPoints() {
        let c = config()
        // Peak at the end of warm-up, floor at the last epoch, halfway between at the midpoint.
        #expect(close(c.learningRate(at: 0.5), 0.002))
        #expect(close(c.learningRate(at: 10), 0.002 * 0.01))
        #expect(close(c.learningRate(at: 0.5 + 9.5 / 2), (0.002 + 0.00002) / 2))
        // Past the end it stays at the floor.
        #expect(close(c.learningRate(at: 12), 0.00002))
        // Monotone decay after the warm-up.
        let rates = stride(from: Float(0.5), through: 10, by: 0.25).map(c.learningRate(at:))
        #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 >= $1 })
    }

    @Test func noWarmUp() {
        let c = config(epochs: 4, lr: 0.01, warmup: 0, final: 0)
        #expect(close(c.learningRate(at: 0), 0.01))
        #expect(close(c.learningRate(at: 2), 0.005))
        #expect(abs(c.learningRate(at: 4)) < 1e-9)
    }

    @Test func defaultsAndCoding() throws {
        let c = TrainingConfig()
        #expect(c.epochs == 15 && c.batchSize == 128 && c.exitWeights == [1, 1, 1] && c.limit == nil)
        var changed = c
        changed.limit = 500; changed.shift = 2; changed.exitWeights = [0.5, 1]
        let decoded = try JSONDecoder().decode(TrainingConfig.self, from: JSONEncoder().encode(changed))
        #expect(decoded == changed)
    }
}
