/// Shape of a 2-D pooling window over (C, H, W) inputs.
///
/// `ceilMode` rounds the output size up, as the paper's B-LeNet needs (15 → 8, 17 → 9,
/// 11 → 6 for a 2×2 window with stride 2); like PyTorch, a last window that would start
/// entirely in the right/bottom padding is dropped.
public struct Pool2DGeometry: Sendable, Equatable {
    public var channels: Int, inH: Int, inW: Int
    public var kernel: Int, stride: Int, pad: Int
    public var ceilMode: Bool

    public init(channels: Int, inH: Int, inW: Int, kernel: Int, stride: Int, pad: Int = 0, ceilMode: Bool = false) {
        self.channels = channels; self.inH = inH; self.inW = inW
        self.kernel = kernel; self.stride = stride; self.pad = pad; self.ceilMode = ceilMode
    }

    /// Output extent along one axis of input extent `size`.
    public func outSize(_ size: Int) -> Int {
        let span = size + 2 * pad - kernel
        // `/` truncates toward zero: a negative numerator means no window fits, not one.
        let numerator = ceilMode ? span + stride - 1 : span
        guard numerator >= 0 else { return 0 }
        var out = numerator / stride + 1
        if !ceilMode { return out }
        if (out - 1) * stride >= size + pad { out -= 1 }
        return out
    }

    public var outH: Int { outSize(inH) }
    public var outW: Int { outSize(inW) }
    public var inputCount: Int { channels * inH * inW }
    public var outputCount: Int { channels * outH * outW }
}

/// Max pooling; the forward pass records the argmax of each window for the backward pass.
public enum MaxPool2D {
    /// y: (N, C, outH, outW) = max over windows of x: (N, C, H, W); `argmax` gets flat input indices.
    public static func forward(_ g: Pool2DGeometry, x: Tensor, argmax: inout [Int32]) -> Tensor {
        let n = x.count / g.inputCount
        let oh = g.outH, ow = g.outW
        var y = Tensor(shape: [n, g.channels, oh, ow])
        if argmax.count != y.count { argmax = [Int32](repeating: 0, count: y.count) }
        x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
        argmax.withUnsafeMutableBufferPointer { ap in
            let xb = xp.baseAddress!, yb = yp.baseAddress!, ab = ap.baseAddress!
            Parallel.forEachChunk(n * g.channels, minimumPerThread: 64) { range in
                for plane in range {
                    let xo = plane * g.inH * g.inW
                    let yo = plane * oh * ow
                    for oy in 0..<oh {
                        let y0 = max(0, oy * g.stride - g.pad), y1 = min(g.inH, oy * g.stride - g.pad + g.kernel)
                        for ox in 0..<ow {
                            let x0 = max(0, ox * g.stride - g.pad), x1 = min(g.inW, ox * g.stride - g.pad + g.kernel)
                            var best = -Float.infinity
                            var bestIndex = xo + y0 * g.inW + x0
                            for iy in y0..<y1 {
                                for ix in x0..<x1 {
                                    let i = xo + iy * g.inW + ix
                                    let v = xb[i]
                                    if v > best { best = v; bestIndex = i }
                                }
                            }
                            yb[yo + oy * ow + ox] = best
                            ab[yo + oy * ow + ox] = Int32(bestIndex)
                        }
                    }
                }
            }
        } } }
        return y
    }

    /// dx: shape of the input, each dy routed to its window's argmax.
    public static func backward(inputShape: [Int], dy: Tensor, argmax: [Int32]) -> Tensor {
        var dx = Tensor(shape: inputShape)
        for i in 0..<dy.count { dx.data[Int(argmax[i])] += dy.data[i] }
        return dx
    }
}

/// Average pooling; each window averages the input elements it covers (padding excluded).
public enum AvgPool2D {
    /// y: (N, C, outH, outW) = mean over windows of x: (N, C, H, W).
    public static func forward(_ g: Pool2DGeometry, x: Tensor) -> Tensor {
        let n = x.count / g.inputCount
        var y = Tensor(shape: [n, g.channels, g.outH, g.outW])
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in forward(g, planes: n * g.channels, xp.baseAddress!, yp.baseAddress!) }
        }
        return y
    }

    /// `planes` planes of x (inH × inW each) → y (outH × outW each); compiled inference runs
    /// it per sample (planes = channels). Allocates nothing.
    public static func forward(_ g: Pool2DGeometry, planes: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let oh = g.outH, ow = g.outW
        for plane in 0..<planes {
            let xo = plane * g.inH * g.inW, yo = plane * oh * ow
            for oy in 0..<oh {
                let y0 = max(0, oy * g.stride - g.pad), y1 = min(g.inH, oy * g.stride - g.pad + g.kernel)
                for ox in 0..<ow {
                    let x0 = max(0, ox * g.stride - g.pad), x1 = min(g.inW, ox * g.stride - g.pad + g.kernel)
                    var s: Float = 0
                    for iy in y0..<y1 { for ix in x0..<x1 { s += x[xo + iy * g.inW + ix] } }
                    let cnt = max(1, (y1 - y0) * (x1 - x0))
                    y[yo + oy * ow + ox] = s / Float(cnt)
                }
            }
        }
    }

    /// dx: each dy spread evenly over its window.
    public static func backward(_ g: Pool2DGeometry, inputShape: [Int], dy: Tensor) -> Tensor {
        var dx = Tensor(shape: inputShape)
        let n = dx.count / g.inputCount
        let oh = g.outH, ow = g.outW
        for plane in 0..<(n * g.channels) {
            let xo = plane * g.inH * g.inW, yo = plane * oh * ow
            for oy in 0..<oh {
                let y0 = max(0, oy * g.stride - g.pad), y1 = min(g.inH, oy * g.stride - g.pad + g.kernel)
                for ox in 0..<ow {
                    let x0 = max(0, ox * g.stride - g.pad), x1 = min(g.inW, ox * g.stride - g.pad + g.kernel)
                    let cnt = Float(max(1, (y1 - y0) * (x1 - x0)))
                    let d = dy.data[yo + oy * ow + ox] / cnt
                    for iy in y0..<y1 { for ix in x0..<x1 { dx.data[xo + iy * g.inW + ix] += d } }
                }
            }
        }
        return dx
    }
}

/// Plain reference twin of max pooling (no argmax bookkeeping), kept for tests.
public enum MaxPool2DReference {
    public static func forward(_ g: Pool2DGeometry, x: Tensor) -> Tensor {
        let n = x.count / g.inputCount
        var y = Tensor(shape: [n, g.channels, g.outH, g.outW])
        for s in 0..<n { for c in 0..<g.channels { for oy in 0..<g.outH { for ox in 0..<g.outW {
            var best = -Float.infinity
            for ki in 0..<g.kernel { for kj in 0..<g.kernel {
                let iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj
                if iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW { continue }
                best = max(best, x.data[((s * g.channels + c) * g.inH + iy) * g.inW + ix])
            } }
            y.data[((s * g.channels + c) * g.outH + oy) * g.outW + ox] = best
        } } } }
        return y
    }
}
