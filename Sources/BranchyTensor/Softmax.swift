import Foundation

/// Softmax, log-softmax, entropy and cross-entropy over rows of (N, C) logits.
public enum Softmax {
    /// Row-wise softmax of logits (N, C), computed stably.
    public static func forward(_ logits: Tensor) -> Tensor {
        let c = logits.shape.last!
        var p = logits
        for s in 0..<(logits.count / c) {
            let o = s * c
            var m = -Float.infinity
            for j in 0..<c { m = max(m, logits.data[o + j]) }
            var sum: Float = 0
            for j in 0..<c { let e = expf(logits.data[o + j] - m); p.data[o + j] = e; sum += e }
            for j in 0..<c { p.data[o + j] /= sum }
        }
        return p
    }

    /// Row-wise log-softmax of logits (N, C).
    public static func logSoftmax(_ logits: Tensor) -> Tensor {
        let c = logits.shape.last!
        var out = logits
        for s in 0..<(logits.count / c) {
            let o = s * c
            var m = -Float.infinity
            for j in 0..<c { m = max(m, logits.data[o + j]) }
            var sum: Float = 0
            for j in 0..<c { sum += expf(logits.data[o + j] - m) }
            let lse = m + logf(sum)
            for j in 0..<c { out.data[o + j] = logits.data[o + j] - lse }
        }
        return out
    }

    /// Shannon entropy −Σ p ln p of each row of probabilities (N, C); divided by ln C when `normalized`.
    public static func entropy(_ probabilities: Tensor, normalized: Bool = false) -> [Float] {
        let c = probabilities.shape.last!
        var h = [Float](repeating: 0, count: probabilities.count / c)
        for s in 0..<h.count {
            var e: Float = 0
            for j in 0..<c {
                let v = probabilities.data[s * c + j]
                if v > 0 { e -= v * logf(v) }
            }
            h[s] = normalized ? e / logf(Float(c)) : e
        }
        return h
    }

    /// Mean softmax cross-entropy of logits (N, C) against labels, and its gradient
    /// with respect to the logits, scaled by `weight / N`.
    public static func crossEntropy(logits: Tensor, labels: [Int], weight: Float = 1) -> (loss: Float, dLogits: Tensor) {
        let c = logits.shape.last!, n = logits.count / c
        var p = forward(logits)
        var loss: Float = 0
        let scale = weight / Float(n)
        for s in 0..<n {
            let y = labels[s]
            loss -= logf(max(p.data[s * c + y], 1e-30))
            p.data[s * c + y] -= 1
            for j in 0..<c { p.data[s * c + j] *= scale }
        }
        return (loss / Float(n), p)
    }

    /// Index of the largest value in each row of (N, C).
    public static func argmax(_ t: Tensor) -> [Int] {
        let c = t.shape.last!
        return (0..<(t.count / c)).map { s in
            var best = 0
            for j in 1..<c where t.data[s * c + j] > t.data[s * c + best] { best = j }
            return best
        }
    }
}
