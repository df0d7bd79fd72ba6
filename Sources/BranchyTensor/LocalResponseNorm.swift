import Foundation

/// Local response normalisation across channels, in Chainer's and Caffe's form (as in the
/// BranchyNet paper's CIFAR-10 networks):
///
///     s_c = k + α · Σ_{|j − c| ≤ size/2} x_j²      y_c = x_c · s_c^(−β)
///
/// at every position, the sum over the channels that exist (α is not divided by the window
/// size; ONNX's `LRN` and PyTorch's take α / size). `size` is odd.
public struct LocalResponseNorm: Sendable, Equatable {
    public var channels: Int, plane: Int
    public var size: Int
    public var alpha: Float, beta: Float, k: Float

    public init(channels: Int, plane: Int, size: Int, alpha: Float, beta: Float, k: Float) {
        self.channels = channels; self.plane = plane; self.size = size
        self.alpha = alpha; self.beta = beta; self.k = k
    }

    /// Values of one sample.
    public var count: Int { channels * plane }

    /// One sample: x (C, plane) → y (C, plane), `y` not overlapping `x`; the denominators
    /// s (C, plane) go to `scale` when given. Allocates nothing.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>?) {
        let half = size / 2
        for c in 0..<channels {
            let lo = max(0, c - half), hi = min(channels - 1, c + half)
            let xc = x + c * plane, yc = y + c * plane
            for i in 0..<plane {
                var sum: Float = 0
                for j in lo...hi { let v = x[j * plane + i]; sum += v * v }
                let s = k + alpha * sum
                scale?[c * plane + i] = s
                yc[i] = xc[i] * powf(s, -beta)
            }
        }
    }

    /// y: (N, C, H, W), with the denominators (same shape) for the backward pass.
    public func forward(_ x: Tensor) -> (y: Tensor, scale: Tensor) {
        var y = Tensor(shape: x.shape), s = Tensor(shape: x.shape)
        let n = x.count / count
        x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
        s.data.withUnsafeMutableBufferPointer { sp in
            for b in 0..<n { forward(xp.baseAddress! + b * count, yp.baseAddress! + b * count, scale: sp.baseAddress! + b * count) }
        } } }
        return (y, s)
    }

    /// dx = dy · s^(−β) − 2αβ · x · Σ_{|j − c| ≤ size/2} y_j · dy_j / s_j (the window is symmetric,
    /// so channel c is in j's window exactly when j is in c's).
    public func backward(x: Tensor, y: Tensor, scale: Tensor, dy: Tensor) -> Tensor {
        var dx = Tensor(shape: x.shape)
        var t = [Float](repeating: 0, count: count)
        let half = size / 2, n = x.count / count
        for b in 0..<n {
            let o = b * count
            for i in 0..<count { t[i] = y.data[o + i] * dy.data[o + i] / scale.data[o + i] }
            for c in 0..<channels {
                let lo = max(0, c - half), hi = min(channels - 1, c + half)
                for i in 0..<plane {
                    var sum: Float = 0
                    for j in lo...hi { sum += t[j * plane + i] }
                    let e = o + c * plane + i
                    dx.data[e] = dy.data[e] * powf(scale.data[e], -beta) - 2 * alpha * beta * x.data[e] * sum
                }
            }
        }
        return dx
    }
}
