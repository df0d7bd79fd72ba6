/// Settings of a training run.
public struct TrainingConfig: Sendable, Codable, Equatable {
    public var epochs: Int = 15
    public var batchSize: Int = 128
    /// Peak learning rate; decays along a cosine to `learningRate * finalLearningRateFraction`.
    public var learningRate: Float = 0.002
    public var finalLearningRateFraction: Float = 0.01
    /// Linear warm-up, in epochs.
    public var warmupEpochs: Float = 0.5
    /// Weight of each exit's cross-entropy in the joint loss (BranchyNet); one per exit.
    public var exitWeights: [Float] = [1, 1, 1]
    public var weightDecay: Float = 0
    public var seed: UInt64 = 1
    /// Random horizontal flips of training images.
    public var flip: Bool = true
    /// Random translation of training images by up to this many pixels.
    public var shift: Int = 0
    /// Train on the first `limit` training samples only (nil = all).
    public var limit: Int? = nil

    public init() {}

    /// Learning rate at fractional epoch `t` (0 ..< epochs).
    public func learningRate(at t: Float) -> Float {
        if t < warmupEpochs { return learningRate * max(0.05, t / warmupEpochs) }
        let progress = min(1, (t - warmupEpochs) / max(1e-6, Float(epochs) - warmupEpochs))
        let floor = learningRate * finalLearningRateFraction
        return floor + (learningRate - floor) * 0.5 * (1 + Float(cos(Double.pi * Double(progress))))
    }
}

#if canImport(Glibc)
import Glibc
#endif
