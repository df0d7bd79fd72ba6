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

    /// Training form: each channel normalised with the batch's own statistics over N and the
    /// plane (M values): x̂ = (x − μ) / √(σ² + ε) with the biased σ², y = γ · x̂ + β. Returns y,
    /// x̂ and the batch's μ and σ² per channel.
    public static func forwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float)
        -> (y: Tensor, normalized: Tensor, mean: [Float], variance: [Float]) {
        let c = gamma.count, plane = x.itemCount / c, n = x.batch
        let m = Float(n * plane)
        var mean = [Float](repeating: 0, count: c), variance = mean
        var xhat = x, y = x
        for ch in 0..<c {
            var sum: Double = 0, squares: Double = 0
            for s in 0..<n {
                let o = (s * c + ch) * plane
                for i in 0..<plane { sum += Double(x.data[o + i]) }
            }
            let mu = Float(sum / Double(m))
            for s in 0..<n {
                let o = (s * c + ch) * plane
                for i in 0..<plane { let d = Double(x.data[o + i] - mu); squares += d * d }
            }
            let v = Float(squares / Double(m))
            mean[ch] = mu; variance[ch] = v
            let inv = 1 / (v + epsilon).squareRoot(), g = gamma.data[ch], b = beta.data[ch]
            for s in 0..<n {
                let o = (s * c + ch) * plane
                for i in 0..<plane {
                    let h = (x.data[o + i] - mu) * inv
                    xhat.data[o + i] = h
                    y.data[o + i] = g * h + b
                }
            }
        }
        return (y, xhat, mean, variance)
    }

    /// Backward of ``forwardTraining(x:gamma:beta:epsilon:)`` (the statistics depend on x):
    /// dx = γ / √(σ² + ε) · (dy − mean(dy) − x̂ · mean(dy · x̂)) per channel; accumulates
    /// dγ += Σ dy · x̂ and dβ += Σ dy.
    public static func backwardTraining(normalized xhat: Tensor, dy: Tensor, variance: [Float], gamma: Tensor, epsilon: Float,
                                        dGamma: inout Tensor, dBeta: inout Tensor) -> Tensor {
        let c = gamma.count, plane = xhat.itemCount / c, n = xhat.batch
        let m = Float(n * plane)
        var dx = dy
        for ch in 0..<c {
            var sumDy: Float = 0, sumDyX: Float = 0
            for s in 0..<n {
                let o = (s * c + ch) * plane
                for i in 0..<plane { sumDy += dy.data[o + i]; sumDyX += dy.data[o + i] * xhat.data[o + i] }
            }
            dGamma.data[ch] += sumDyX
            dBeta.data[ch] += sumDy
            let k = gamma.data[ch] / (variance[ch] + epsilon).squareRoot()
            let meanDy = sumDy / m, meanDyX = sumDyX / m
            for s in 0..<n {
                let o = (s * c + ch) * plane
                for i in 0..<plane { dx.data[o + i] = k * (dy.data[o + i] - meanDy - xhat.data[o + i] * meanDyX) }
            }
        }
        return dx
    }
}
