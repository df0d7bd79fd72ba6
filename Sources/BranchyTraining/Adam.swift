import BranchyModel
import Foundation

/// Adam (Kingma & Ba) with bias correction and optional decoupled weight decay.
public struct Adam: Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0
    /// Number of updates taken so far.
    public private(set) var step = 0

    public init(weightDecay: Float = 0) { self.weightDecay = weightDecay }

    /// Applies one update with learning rate `lr` to every parameter, then zeroes its gradient.
    public mutating func update(_ parameters: [Parameter], lr: Float) {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let b1 = beta1, b2 = beta2, eps = epsilon
        for p in parameters {
            let decay = p.value.rank >= 2 ? weightDecay : 0
            p.value.data.withUnsafeMutableBufferPointer { w in
            p.grad.data.withUnsafeMutableBufferPointer { g in
            p.m.withUnsafeMutableBufferPointer { m in
            p.v.withUnsafeMutableBufferPointer { v in
                for i in 0..<w.count {
                    let gi = g[i]
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    let mh = m[i] / c1, vh = v[i] / c2
                    w[i] -= lr * (mh / (vh.squareRoot() + eps) + decay * w[i])
                    g[i] = 0
                }
            } } } }
        }
    }
}
