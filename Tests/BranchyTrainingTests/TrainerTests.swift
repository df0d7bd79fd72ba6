import BranchyData
import BranchyModel
import BranchyTensor
import Testing
@testable import BranchyTraining

@Suite struct TrainerTests {
    @Test func rejectsBadConfigurations() throws {
        let network = try Network(spec: TrainingFixture.tinySpec)
        func reason(_ config: TrainingConfig) -> String? {
            do { _ = try Trainer(network: network, config: config); return nil } catch { return "\(error)" }
        }
        let good = TrainingFixture.config(epochs: 1, batchSize: 4, learningRate: 0.01, exitWeights: [1, 1], seed: 1)
        #expect(reason(good) == nil)
        var c = good
        c.exitWeights = [1, 1, 1]
        #expect(reason(c) == "exit weights: need 2 (one per exit), got 3")
        c = good; c.epochs = 0
        #expect(reason(c) == "epochs, batch size and learning rate must be positive")
        c = good; c.batchSize = 0
        #expect(reason(c) != nil)
        c = good; c.learningRate = 0
        #expect(reason(c) != nil)
    }

    /// `Trainer.step` takes one Adam step, which on the first update moves every weight by
    /// lr against the sign of its gradient. Compare that sign with central finite differences
    /// of the joint loss, and the returned loss with the loss computed independently.
    @Test func imagesOfAnotherSizeAreAnError() throws {
        let network = try Network(spec: TrainingFixture.tinySpec)
        let config = TrainingFixture.config(epochs: 1, batchSize: 2, learningRate: 0.01, exitWeights: [1, 1], seed: 1)
        let trainer = try Trainer(network: network, config: config)
        let other = IDXDataset(images: [Float](repeating: 0, count: 4 * 49), labels: [0, 1, 2, 0], rows: 7, cols: 7)
        let error = #expect(throws: TrainingError.self) { try trainer.train(on: other) { _ in } }
        #expect(error?.description == "the data set's images are 1×7×7, but model tiny expects [1, 6, 6]")
    }

    @Test func stepDescendsTheJointLoss() throws {
        let weights: [Float] = [0.6, 1.4]
        let network = try Network(spec: TrainingFixture.tinySpec)
        network.initialize(seed: 21)
        var rng = SeededRandom(seed: 22)
        for p in network.parameters where p.name.hasSuffix(".bias") {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-0.2, 0.2) }
        }
        let x = TrainingFixture.randomInput([1, 6, 6], count: 6, seed: 23)
        let labels = [0, 1, 2, 2, 1, 0]

        // Numeric gradient of every element.
        let eps: Float = 1e-3
        var numeric: [[Double]] = []
        for p in network.parameters {
            var g = [Double](repeating: 0, count: p.value.count)
            for i in 0..<p.value.count {
                let v = p.value.data[i]
                p.value.data[i] = v + eps
                let up = TrainingFixture.jointLoss(network, x, labels, weights)
                p.value.data[i] = v - eps
                let down = TrainingFixture.jointLoss(network, x, labels, weights)
                p.value.data[i] = v
                g[i] = (up - down) / (Double(v + eps) - Double(v - eps))
            }
            numeric.append(g)
        }
        let lossBefore = TrainingFixture.jointLoss(network, x, labels, weights)
        let before = network.parameters.map(\.value)

        // Correct counts from the logits before the update.
        var expectedCorrect: [Int] = []
        var f = x
        for i in 0..<2 {
            f = network.trunk(i, f)
            expectedCorrect.append(zip(Softmax.argmax(network.exitLogits(i, f)), labels).filter { $0 == $1 }.count)
        }

        let config = TrainingFixture.config(epochs: 1, batchSize: 6, learningRate: 0.01, exitWeights: weights, seed: 1)
        let trainer = try Trainer(network: network, config: config)
        let lr: Float = 1e-3
        let r = trainer.step(images: x, labels: labels, lr: lr)
        #expect(abs(Double(r.loss) - lossBefore) < 1e-5)
        #expect(r.correct == expectedCorrect)

        var compared = 0
        for (pi, p) in network.parameters.enumerated() {
            #expect(p.grad.data.allSatisfy { $0 == 0 }, "\(p.name): gradient not cleared")
            for i in 0..<p.value.count {
                let g = numeric[pi][i]
                let moved = Double(p.value.data[i]) - Double(before[pi].data[i])
                if abs(g) > 1e-3 {
                    // moved ≈ −lr · sign(g)
                    #expect(abs(moved / Double(lr) + (g > 0 ? 1 : -1)) < 2e-3, "\(p.name)[\(i)]: moved \(moved), gradient \(g)")
                    compared += 1
                } else if g == 0 {
                    #expect(moved == 0, "\(p.name)[\(i)]: moved \(moved) with no gradient")
                }
            }
        }
        #expect(compared > 150)
        // A small step against the gradient lowers the loss.
        #expect(TrainingFixture.jointLoss(network, x, labels, weights) < lossBefore)
    }
}
