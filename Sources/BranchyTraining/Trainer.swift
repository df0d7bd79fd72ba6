import BranchyData
import BranchyModel
import BranchyReport
import BranchyTensor
import Foundation

/// Trains all exits of a network jointly (BranchyNet): the loss is the weighted sum of
/// every exit's softmax cross-entropy, minimised with Adam over shuffled mini-batches.
public final class Trainer {
    public let network: Network
    public let config: TrainingConfig
    private var optimizer: Adam
    private var rng: SeededRandom

    /// Loss and accuracy of one epoch, per exit.
    public struct EpochSummary: Sendable {
        public var epoch: Int
        public var loss: Float
        public var exitAccuracy: [Float]
        public var seconds: Double
    }

    public init(network: Network, config: TrainingConfig) throws {
        guard config.exitWeights.count == network.stages.count else {
            throw TrainingError("exit weights: need \(network.stages.count) (one per exit), got \(config.exitWeights.count)")
        }
        guard config.epochs >= 1, config.batchSize >= 1, config.learningRate > 0 else {
            throw TrainingError("epochs, batch size and learning rate must be positive")
        }
        self.network = network
        self.config = config
        self.optimizer = Adam(weightDecay: config.weightDecay)
        self.rng = SeededRandom(seed: config.seed ^ 0x5EED)
    }

    /// One joint forward/backward/update step on a batch; returns the joint loss and correct counts per exit.
    public func step(images: Tensor, labels: [Int], lr: Float) -> (loss: Float, correct: [Int]) {
        let r = network.jointLossGradients(images: images, labels: labels, exitWeights: config.exitWeights)
        optimizer.update(network.parameters, lr: lr)
        return r
    }

    /// Trains `config.epochs` epochs on `data`, calling `onEpoch` after each. Throws when the
    /// images are not the network's input.
    public func train(on data: ImageDataset, onEpoch: (EpochSummary) -> Void) throws {
        try network.checkInput(of: data)
        let n = min(data.count, config.limit ?? data.count)
        let batches = (n + config.batchSize - 1) / config.batchSize
        var order = Array(0..<n)
        let inputShape = network.spec.input
        for epoch in 0..<config.epochs {
            order.shuffle(using: &rng)
            let start = Date()
            var bar = ProgressBar(total: n, label: "epoch \(epoch + 1)/\(config.epochs)")
            var lossSum: Float = 0, seen = 0
            var correct = [Int](repeating: 0, count: network.stages.count)
            for b in 0..<batches {
                let idx = order[(b * config.batchSize)..<min(n, (b + 1) * config.batchSize)]
                let batch = data.batch(indices: idx)
                var x = Tensor(shape: [idx.count] + inputShape, data: batch.images)
                Augment.apply(&x, flip: config.flip, shift: config.shift, rng: &rng)
                let lr = config.learningRate(at: Float(epoch) + Float(b) / Float(batches))
                let r = step(images: x, labels: batch.labels.map(Int.init), lr: lr)
                lossSum += r.loss * Float(idx.count)
                seen += idx.count
                for i in 0..<correct.count { correct[i] += r.correct[i] }
                let accs = correct.map { String(format: "%.1f", 100 * Float($0) / Float(seen)) }.joined(separator: "/")
                bar.update(seen, fields: "batch \(b + 1)/\(batches) " + String(format: "loss %.4f", lossSum / Float(seen)) + " acc \(accs)% " + String(format: "lr %.5f", lr), force: b == batches - 1)
            }
            bar.finish()
            onEpoch(EpochSummary(epoch: epoch + 1, loss: lossSum / Float(max(1, seen)),
                                 exitAccuracy: correct.map { Float($0) / Float(max(1, seen)) },
                                 seconds: Date().timeIntervalSince(start)))
        }
        for s in network.stages { for l in s.trunk + s.exit { l.clearCache() } }
    }
}

/// A training set-up error with its reason.
public struct TrainingError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
