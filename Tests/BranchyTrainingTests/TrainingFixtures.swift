import BranchyData
import BranchyModel
import BranchyTensor
@testable import BranchyTraining
import Foundation

/// The package root, found from this file's location (Tests/BranchyTrainingTests/…).
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

enum TrainingFixture {
    /// The committed Fashion-MNIST test split (10,000 images), loaded once.
    static let fashionMNIST: Result<IDXDataset, Error> = Result {
        try IDXDataset.load(path: packageRoot.appendingPathComponent("data/fashion-mnist").path)
    }

    /// The first `count` samples of `data` as a data set of their own.
    static func prefix(_ data: IDXDataset, _ count: Int) -> IDXDataset {
        let n = min(count, data.count)
        return IDXDataset(images: Array(data.images.prefix(n * data.pixelsPerImage)), labels: Array(data.labels.prefix(n)),
                          rows: data.rows, cols: data.cols)
    }

    /// A trace of `samples` samples over exits named `names`, built from explicit
    /// (predicted, entropy) pairs per exit and sample.
    static func trace(names: [String], labels: [Int], _ outputs: [[(Int, Float)]]) -> ExitTrace {
        ExitTrace(exitNames: names, labels: labels,
                  outputs: outputs.map { $0.map { ExitOutput(predicted: $0.0, confidence: 0.5, entropy: $0.1) } })
    }
}

extension TrainingFixture {
    /// A two-stage model on 1×6×6 inputs with three classes (conv, ceil-mode maxpool, relu | linear;
    /// conv, relu | linear, relu, linear).
    static var tinySpec: ModelSpec {
        ModelSpec(name: "tiny", input: [1, 6, 6], classes: 3, stages: [
            StageSpec(name: "a", trunk: [
                .conv("c1", out: 3, kernel: 3, pad: 1), .maxPool(3, stride: 2, ceil: true), .relu,
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 3)])),
            StageSpec(name: "b", trunk: [
                .conv("c2", out: 4, kernel: 2), .relu,
            ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc1", out: 5), .relu, .linear("fc2", out: 3)])),
        ])
    }

    /// A seeded batch of `count` inputs of `shape` with values in [-1, 1).
    static func randomInput(_ shape: [Int], count: Int, seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        let n = count * shape.reduce(1, *)
        return Tensor(shape: [count] + shape, data: (0..<n).map { _ in rng.uniform(-1, 1) })
    }

    /// The joint loss Σᵢ wᵢ · mean cross-entropy of exit i, in Double, from an inference forward pass.
    static func jointLoss(_ network: Network, _ x: Tensor, _ labels: [Int], _ weights: [Float]) -> Double {
        var features = x
        var loss = 0.0
        for i in 0..<network.stages.count {
            features = network.trunk(i, features)
            let logits = network.exitLogits(i, features)
            let c = logits.shape[1]
            var sum = 0.0
            for s in 0..<labels.count {
                let row = (0..<c).map { Double(logits.data[s * c + $0]) }
                let m = row.max()!
                sum += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[labels[s]]
            }
            loss += Double(weights[i]) * sum / Double(labels.count)
        }
        return loss
    }

    /// A training configuration with every field set explicitly.
    static func config(epochs: Int, batchSize: Int, learningRate: Float, exitWeights: [Float], seed: UInt64,
                       limit: Int? = nil) -> TrainingConfig {
        var c = TrainingConfig()
        c.epochs = epochs
        c.batchSize = batchSize
        c.learningRate = learningRate
        c.finalLearningRateFraction = 0.1
        c.warmupEpochs = 0.25
        c.exitWeights = exitWeights
        c.weightDecay = 0
        c.seed = seed
        c.flip = false
        c.shift = 0
        c.limit = limit
        return c
    }
}
