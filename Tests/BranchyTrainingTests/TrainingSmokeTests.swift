import BranchyData
import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyTraining

/// End-to-end training of the three-stage architecture on a slice of the committed Fashion-MNIST test split.
@Suite struct TrainingSmokeTests {
    func train(samples: Int, epochs: Int, seed: UInt64) throws -> (network: Network, summaries: [Trainer.EpochSummary]) {
        let data = try TrainingFixture.fashionMNIST.get()
        let network = try Network(spec: Architectures.bLeNet3)
        network.initialize(seed: seed)
        let config = TrainingFixture.config(epochs: epochs, batchSize: 64, learningRate: 0.005, exitWeights: [1, 1, 1],
                                            seed: seed, limit: samples)
        let trainer = try Trainer(network: network, config: config)
        var summaries: [Trainer.EpochSummary] = []
        try trainer.train(on: data) { summaries.append($0) }
        return (network, summaries)
    }

    @Test func lossFallsAndTheLastExitLearns() throws {
        let (_, summaries) = try train(samples: 512, epochs: 3, seed: 17)
        #expect(summaries.map(\.epoch) == [1, 2, 3])
        #expect(summaries.allSatisfy { $0.loss.isFinite && $0.exitAccuracy.count == 3 })
        #expect(summaries[2].loss < summaries[0].loss, "losses \(summaries.map(\.loss))")
        #expect(summaries[2].exitAccuracy[2] > 0.5, "accuracies \(summaries.map(\.exitAccuracy))")
    }

    @Test func sameSeedSameWeights() throws {
        let a = try train(samples: 256, epochs: 1, seed: 5)
        let b = try train(samples: 256, epochs: 1, seed: 5)
        let ta = a.network.namedTensors, tb = b.network.namedTensors
        #expect(ta.keys.sorted() == tb.keys.sorted())
        let differing = ta.keys.sorted().filter { ta[$0] != tb[$0] }
        #expect(differing.isEmpty, "tensors differing between two runs with the same seed: \(differing)")
        #expect(a.summaries.map(\.loss) == b.summaries.map(\.loss))
        // A different seed trains a different network.
        let c = try train(samples: 256, epochs: 1, seed: 6)
        #expect(c.network.namedTensors != ta)
    }
}
