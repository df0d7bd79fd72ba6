import BranchyTensor

/// What an exit says about one sample.
public struct ExitOutput: Sendable, Equatable {
    /// Index of the most probable class.
    public var predicted: Int
    /// Softmax probability of that class.
    public var confidence: Float
    /// Shannon entropy of the softmax, natural log, not normalised.
    public var entropy: Float

    public init(predicted: Int, confidence: Float, entropy: Float) {
        self.predicted = predicted; self.confidence = confidence; self.entropy = entropy
    }

    /// Summarises each row of logits (N, C).
    public static func from(logits: Tensor) -> [ExitOutput] {
        let p = Softmax.forward(logits)
        let h = Softmax.entropy(p)
        let cls = Softmax.argmax(p)
        let c = p.shape.last!
        return (0..<h.count).map { ExitOutput(predicted: cls[$0], confidence: p.data[$0 * c + cls[$0]], entropy: h[$0]) }
    }
}

/// The early-exit rule: a sample leaves at exit `i` when its entropy is below `thresholds[i]`; the last exit always classifies.
public struct ExitPolicy: Sendable, Equatable {
    public var thresholds: [Float]
    public init(thresholds: [Float]) { self.thresholds = thresholds }

    /// Whether a sample with `entropy` leaves at exit `index` of `exitCount` exits.
    @inlinable
    public func exits(at index: Int, of exitCount: Int, entropy: Float) -> Bool {
        index == exitCount - 1 || entropy < thresholds[index]
    }
}

extension Network {
    /// Runs stage `index`'s exit on features and summarises each sample.
    public func classify(exit index: Int, features: Tensor) -> [ExitOutput] {
        ExitOutput.from(logits: exitLogits(index, features))
    }
}
