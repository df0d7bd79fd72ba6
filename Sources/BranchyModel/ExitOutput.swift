import Foundation
import BranchyTensor

/// What an exit says about one sample.
public struct ExitOutput: Sendable, Equatable {
    /// Index of the most probable class.
    public var predicted: Int
    /// Softmax probability of that class.
    public var confidence: Float
    /// Shannon entropy of the softmax, natural log, not normalised.
    public var entropy: Float
    /// The softmax of every class, when asked for (``summarize(_:classes:withProbabilities:)``).
    public var probabilities: [Float]?

    public init(predicted: Int, confidence: Float, entropy: Float, probabilities: [Float]? = nil) {
        self.predicted = predicted; self.confidence = confidence; self.entropy = entropy; self.probabilities = probabilities
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

    /// This policy with `overrides[i]` as exit `i`'s threshold where given; indices past the
    /// policy's exits are ignored.
    public func overriding(_ overrides: [Int: Float]) -> ExitPolicy {
        var p = self
        for (i, t) in overrides where i >= 0 && i < p.thresholds.count { p.thresholds[i] = t }
        return p
    }
}

extension Network {
    /// Runs stage `index`'s exit on features and summarises each sample.
    public func classify(exit index: Int, features: Tensor) -> [ExitOutput] {
        ExitOutput.from(logits: exitLogits(index, features))
    }
}

extension ExitOutput {
    /// Summarises one row of `classes` logits without allocating; the same arithmetic, in the
    /// same order, as ``from(logits:)``, so the two agree bit for bit.
    /// With `withProbabilities`, the softmax of every class is kept too (the same values the
    /// summary is computed from).
    public static func summarize(_ logits: UnsafePointer<Float>, classes c: Int, withProbabilities: Bool) -> ExitOutput {
        var out = summarize(logits, classes: c)
        guard withProbabilities else { return out }
        var m = -Float.infinity
        for j in 0..<c { m = max(m, logits[j]) }
        var sum: Float = 0
        for j in 0..<c { sum += expf(logits[j] - m) }
        out.probabilities = (0..<c).map { expf(logits[$0] - m) / sum }
        return out
    }

    /// Summarises one row of `classes` logits without allocating.
    public static func summarize(_ logits: UnsafePointer<Float>, classes c: Int) -> ExitOutput {
        var m = -Float.infinity
        for j in 0..<c { m = max(m, logits[j]) }
        var sum: Float = 0
        for j in 0..<c { sum += expf(logits[j] - m) }
        var entropy: Float = 0
        var best = 0
        var bestP: Float = 0
        for j in 0..<c {
            let p = expf(logits[j] - m) / sum
            if p > 0 { entropy -= p * logf(p) }
            if j == 0 || p > bestP { best = j; bestP = p }
        }
        return ExitOutput(predicted: best, confidence: bestP, entropy: entropy)
    }
}
