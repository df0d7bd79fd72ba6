/// Batch normalisation in inference form: per channel, y = (x − mean) / √(var + ε) · γ + β.
public enum BatchNorm {
    /// Per-channel scale and shift equivalent to the normalisation.
    public static func affine(mean: Tensor, variance: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float) -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: mean.count), shift = scale
        for c in 0..<mean.count {
            scale[c] = gamma.data[c] / (variance.data[c] + epsilon).squareRoot()
            shift[c] = beta.data[c] - mean.data[c] * scale[c]
        }
        return (scale, shift)
    }

    /// y: (N, C, …) normalised with running statistics.
    public static func forward(x: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float = 1e-5) -> Tensor {
        let (scale, shift) = affine(mean: mean, variance: variance, gamma: gamma, beta: beta, epsilon: epsilon)
        let c = mean.count, plane = x.itemCount / c
        var y = x
        for s in 0..<x.batch { for ch in 0..<c {
            let o = (s * c + ch) * plane
            for i in 0..<plane { y.data[o + i] = x.data[o + i] * scale[ch] + shift[ch] }
        } }
        return y
    }

    /// Returns dx and accumulates dγ, dβ (statistics are constants in inference form).
    public static func backward(x: Tensor, dy: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor, epsilon: Float = 1e-5,
                                dGamma: inout Tensor, dBeta: inout Tensor) -> Tensor {
        let c = mean.count, plane = x.itemCount / c
        var dx = dy
        for ch in 0..<c {
            let inv = 1 / (variance.data[ch] + epsilon).squareRoot()
            let scale = gamma.data[ch] * inv
            for s in 0..<x.batch {
                let o = (s * c + ch) * plane
                for i in 0..<plane {
                    let d = dy.data[o + i]
                    dGamma.data[ch] += d * (x.data[o + i] - mean.data[ch]) * inv
                    dBeta.data[ch] += d
                    dx.data[o + i] = d * scale
                }
            }
        }
        return dx
    }
}
