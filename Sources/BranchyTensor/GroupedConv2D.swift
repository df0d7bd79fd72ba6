/// Shape of a grouped, dilated 2-D convolution: input (C, H, W), weight (outC, C / groups, k, k),
/// output (outC, outH, outW). Output channel o reads the input channels of its group,
/// o / (outC / groups); groups = C = outC is a depthwise convolution.
public struct GroupedConv2DGeometry: Sendable, Hashable {
    public var inC: Int, inH: Int, inW: Int
    public var outC: Int, kernel: Int, stride: Int, pad: Int, dilation: Int, groups: Int

    public init(inC: Int, inH: Int, inW: Int, outC: Int, kernel: Int, stride: Int = 1, pad: Int = 0, dilation: Int = 1, groups: Int = 1) {
        self.inC = inC; self.inH = inH; self.inW = inW; self.outC = outC
        self.kernel = kernel; self.stride = stride; self.pad = pad; self.dilation = dilation; self.groups = groups
    }

    /// The window's extent on the input: dilation · (k − 1) + 1.
    public var span: Int { dilation * (kernel - 1) + 1 }
    public var outH: Int { Self.outSize(inH + 2 * pad - span, stride) }
    public var outW: Int { Self.outSize(inW + 2 * pad - span, stride) }
    private static func outSize(_ extent: Int, _ stride: Int) -> Int { extent < 0 ? 0 : extent / stride + 1 }
    /// Input channels per group.
    public var groupInC: Int { inC / groups }
    /// Output channels per group.
    public var groupOutC: Int { outC / groups }
    public var inputCount: Int { inC * inH * inW }
    public var outputCount: Int { outC * outH * outW }
    public var weightShape: [Int] { [outC, groupInC, kernel, kernel] }

    /// The output columns ox whose input column ox·stride − pad + kx·dilation lies in the image.
    @inline(__always)
    func validColumns(_ kx: Int) -> Range<Int> { Self.valid(kx * dilation - pad, stride, inW, outW) }

    /// The output rows oy whose input row lies in the image.
    @inline(__always)
    func validRows(_ ky: Int) -> Range<Int> { Self.valid(ky * dilation - pad, stride, inH, outH) }

    /// The o in 0..<count with 0 ≤ o·stride + offset < size.
    @inline(__always)
    private static func valid(_ offset: Int, _ stride: Int, _ size: Int, _ count: Int) -> Range<Int> {
        let low = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let high = size - offset <= 0 ? 0 : min(count, (size - offset - 1) / stride + 1)
        return low < high ? low..<high : 0..<0
    }
}

/// Grouped and dilated convolution computed directly (no im2col): the form for depthwise
/// convolutions, where a matrix product would have a single row per group. Forward, and the
/// backward pass of training.
public enum GroupedConv2D {
    /// One sample: y (outC, outH, outW) = conv(x (C, H, W), w) + b.
    public static func forward(_ g: GroupedConv2DGeometry, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let plane = g.outH * g.outW, inPlane = g.inH * g.inW, k = g.kernel
        for o in 0..<g.outC {
            let yo = y + o * plane
            yo.update(repeating: bias?[o] ?? 0, count: plane)
            let group = o / g.groupOutC
            for ci in 0..<g.groupInC {
                let xc = x + (group * g.groupInC + ci) * inPlane
                let wc = w + (o * g.groupInC + ci) * k * k
                for ky in 0..<k {
                    let rows = g.validRows(ky)
                    for kx in 0..<k {
                        let wv = wc[ky * k + kx]
                        let cols = g.validColumns(kx)
                        if cols.isEmpty { continue }
                        for oy in rows {
                            let xr = xc + (oy * g.stride - g.pad + ky * g.dilation) * g.inW + (kx * g.dilation - g.pad)
                            let yr = yo + oy * g.outW
                            if g.stride == 1 {
                                for ox in cols { yr[ox] += wv * xr[ox] }
                            } else {
                                for ox in cols { yr[ox] += wv * xr[ox * g.stride] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// y (N, outC, outH, outW) for x (N, C, H, W).
    public static func forward(_ g: GroupedConv2DGeometry, x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = x.count / g.inputCount
        var y = Tensor(shape: [n, g.outC, g.outH, g.outW])
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                weight.data.withUnsafeBufferPointer { wp in
                    withBias(bias) { b in
                        for s in 0..<n {
                            forward(g, xp.baseAddress! + s * g.inputCount, weight: wp.baseAddress!, bias: b,
                                    yp.baseAddress! + s * g.outputCount)
                        }
                    }
                }
            }
        }
        return y
    }

    /// Accumulates the weight and bias gradients from dy (N, outC, outH, outW) and the forward
    /// input x; returns dx when asked.
    public static func backward(_ g: GroupedConv2DGeometry, x: Tensor, weight: Tensor, dy: Tensor,
                                dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool) -> Tensor? {
        let n = x.count / g.inputCount
        let plane = g.outH * g.outW, inPlane = g.inH * g.inW, k = g.kernel
        var dx = needInputGradient ? Tensor(shape: x.shape) : Tensor(shape: [0])
        if var db = dBias {
            for s in 0..<n {
                for o in 0..<g.outC {
                    var sum: Float = 0
                    for i in 0..<plane { sum += dy.data[s * g.outputCount + o * plane + i] }
                    db.data[o] += sum
                }
            }
            dBias = db
        }
        x.data.withUnsafeBufferPointer { xp in
        dy.data.withUnsafeBufferPointer { dyp in
        weight.data.withUnsafeBufferPointer { wp in
        dWeight.data.withUnsafeMutableBufferPointer { dwp in
        dx.data.withUnsafeMutableBufferPointer { dxp in
            for s in 0..<n {
                for o in 0..<g.outC {
                    let dyo = dyp.baseAddress! + s * g.outputCount + o * plane
                    let group = o / g.groupOutC
                    for ci in 0..<g.groupInC {
                        let c = group * g.groupInC + ci
                        let xc = xp.baseAddress! + s * g.inputCount + c * inPlane
                        let wi = (o * g.groupInC + ci) * k * k
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let cols = g.validColumns(kx)
                                var sum: Float = 0
                                for oy in g.validRows(ky) {
                                    let row = (oy * g.stride - g.pad + ky * g.dilation) * g.inW + kx * g.dilation - g.pad
                                    for ox in cols {
                                        let d = dyo[oy * g.outW + ox]
                                        sum += d * xc[row + ox * g.stride]
                                        if needInputGradient { dxp[s * g.inputCount + c * inPlane + row + ox * g.stride] += d * wp[wi + ky * k + kx] }
                                    }
                                }
                                dwp[wi + ky * k + kx] += sum
                            }
                        }
                    }
                }
            }
        }}}}}
        return needInputGradient ? dx : nil
    }

    private static func withBias<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.data.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}
