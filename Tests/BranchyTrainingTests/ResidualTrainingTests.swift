import BranchyData
import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyTraining

/// Training a small residual network (batch norms on batch statistics, an identity and a
/// zero-padded shortcut) on a slice of the committed Fashion-MNIST test split.
@Suite struct ResidualTrainingTests {
    static var spec: ModelSpec {
        func bn(_ name: String) -> LayerSpec { LayerSpec(op: "batchnorm", name: name, momentum: 0.1) }
        return ModelSpec(name: "tiny-resnet", input: [1, 28, 28], classes: 10, stages: [
            StageSpec(name: "device", trunk: [
                .conv("c1", out: 8, kernel: 3, pad: 1), bn("bn1"), .relu, .maxPool(2),
                .residual("r1", [.conv("r1.c1", out: 8, kernel: 3, pad: 1), bn("r1.bn1"), .relu,
                                 .conv("r1.c2", out: 8, kernel: 3, pad: 1), bn("r1.bn2")]),
                .relu,
            ], exit: ExitSpec(name: "exit1", layers: [.flatten, .linear("fc", out: 10)])),
            StageSpec(name: "cloud", trunk: [
                .residual("r2", [LayerSpec(op: "conv", name: "r2.c1", out: 16, kernel: 3, stride: 2, pad: 1), bn("r2.bn1"), .relu,
                                 .conv("r2.c2", out: 16, kernel: 3, pad: 1), bn("r2.bn2")],
                          shortcut: [.avgPool(1, stride: 2), .padChannels(out: 16)]),
                .relu, .avgPool(7),
            ], exit: ExitSpec(name: "final", layers: [.flatten, .linear("fc", out: 10)])),
        ])
    }

    @Test func lossFalls() throws {
        let data = try TrainingFixture.fashionMNIST.get()
        let network = try Network(spec: Self.spec)
        network.initialize(seed: 3)
        let config = TrainingFixture.config(epochs: 3, batchSize: 32, learningRate: 0.005, exitWeights: [1, 1], seed: 3, limit: 512)
        let trainer = try Trainer(network: network, config: config)
        var summaries: [Trainer.EpochSummary] = []
        try trainer.train(on: data) { summaries.append($0) }
        #expect(summaries.allSatisfy { $0.loss.isFinite })
        #expect(summaries[2].loss < summaries[0].loss * 0.8, "losses \(summaries.map(\.loss))")
        // Both exits learn: the first well past chance, the final one (16 globally pooled values) more slowly.
        #expect(summaries[2].exitAccuracy[0] > 0.7, "accuracies \(summaries.map(\.exitAccuracy))")
        #expect(summaries[2].exitAccuracy[1] > summaries[0].exitAccuracy[1] + 0.15, "accuracies \(summaries.map(\.exitAccuracy))")
        // The running statistics moved away from their initial values.
        let stats = network.namedTensors
        #expect(stats["cloud.trunk.r2.bn2.running_mean"]!.data.contains { $0 != 0 })

        // The trained network classifies the same through compiled inference (batch norms folded).
        let trace = try Evaluator.trace(network: network, data: TrainingFixture.prefix(data, 256))
        let compiledFinal = trace.outputs[1].map(\.predicted)
        var x = Tensor(shape: [256, 1, 28, 28], data: Array(data.images[0..<(256 * 784)]))
        x = network.trunk(1, network.trunk(0, x))
        let reference = Softmax.argmax(network.exitLogits(1, x))
        let agree = zip(compiledFinal, reference).filter { $0 == $1 }.count
        #expect(agree >= 254, "\(agree) of 256 agree")
    }
}
