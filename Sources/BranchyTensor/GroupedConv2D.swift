import CBranchyKernels

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
    /// One sample: y (outC, outH, outW) = conv(x (C, H, W), w) + b. A depthwise 3×3 convolution
    /// (one input and one output channel per group) takes ``depthwise3x3(_:_:weight:bias:_:)``.
    public static func forward(_ g: GroupedConv2DGeometry, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        if g.kernel == 3, g.groups == g.inC, g.groups == g.outC { return depthwise3x3(g, x, weight: w, bias: bias, y) }
        reference(g, x, weight: w, bias: bias, y)
    }

    /// The general form: for each output channel, input channel of its group and tap, the tap
    /// times the input added over the output positions that reach into the image.
    public static func reference(_ g: GroupedConv2DGeometry, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
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

    /// A depthwise 3×3 convolution: each output value sums its nine taps in a register, in the
    /// order of ``reference(_:_:weight:bias:_:)`` (bias, then the taps row by row), so both give
    /// the same bits; positions whose window lies inside the image skip the bounds checks.
    public static func depthwise3x3(_ g: GroupedConv2DGeometry, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                    bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let inH = g.inH, inW = g.inW, outH = g.outH, outW = g.outW, s = g.stride, p = g.pad, d = g.dilation
        let plane = outH * outW, inPlane = inH * inW
        // Output columns (rows) whose three taps all lie inside the image.
        let colLow = Swift.min(outW, (p + s - 1) / s), colHigh = Swift.max(colLow, Swift.min(outW, inW - 1 - 2 * d + p >= 0 ? (inW - 1 - 2 * d + p) / s + 1 : 0))
        let rowLow = Swift.min(outH, (p + s - 1) / s), rowHigh = Swift.max(rowLow, Swift.min(outH, inH - 1 - 2 * d + p >= 0 ? (inH - 1 - 2 * d + p) / s + 1 : 0))
        for c in 0..<g.outC {
            let xc = x + c * inPlane, wc = w + c * 9, yc = y + c * plane
            let b = bias?[c] ?? 0
            let w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6], w7 = wc[7], w8 = wc[8]
            for oy in 0..<outH {
                let yr = yc + oy * outW
                let iy = oy * s - p
                if oy >= rowLow && oy < rowHigh {
                    let r0 = xc + iy * inW - p, r1 = r0 + d * inW, r2 = r1 + d * inW
                    for ox in colLow..<colHigh {
                        let i = ox * s
                        var acc = b
                        acc += w0 * r0[i]; acc += w1 * r0[i + d]; acc += w2 * r0[i + 2 * d]
                        acc += w3 * r1[i]; acc += w4 * r1[i + d]; acc += w5 * r1[i + 2 * d]
                        acc += w6 * r2[i]; acc += w7 * r2[i + d]; acc += w8 * r2[i + 2 * d]
                        yr[ox] = acc
                    }
                    for ox in 0..<colLow { yr[ox] = edge(xc, wc, b, iy, ox * s - p, inH, inW, d) }
                    for ox in colHigh..<outW { yr[ox] = edge(xc, wc, b, iy, ox * s - p, inH, inW, d) }
                } else {
                    for ox in 0..<outW { yr[ox] = edge(xc, wc, b, iy, ox * s - p, inH, inW, d) }
                }
            }
        }
    }

    /// One output value of a depthwise 3×3 window at input (iy, ix), taps outside the image skipped.
    @inline(__always)
    private static func edge(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: Float, _ iy: Int, _ ix: Int,
                             _ inH: Int, _ inW: Int, _ d: Int) -> Float {
        var acc = b
        for ky in 0..<3 {
            let r = iy + ky * d
            guard r >= 0 && r < inH else { continue }
            for kx in 0..<3 {
                let c = ix + kx * d
                if c >= 0 && c < inW { acc += w[ky * 3 + kx] * x[r * inW + c] }
            }
        }
        return acc
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

/// A depthwise 3×3 convolution packed for the C kernel `bk_depthwise3x3`: the taps tap-major
/// with the channels padded to 16, the bias padded alike. Gives the values of
/// ``GroupedConv2D/depthwise3x3(_:_:weight:bias:_:)`` (see kernels_depthwise.c for the one
/// difference, the sign of a zero sum).
public struct PackedDepthwise3x3: Sendable {
    public let geometry: GroupedConv2DGeometry
    let shape: bk_depthwise_geometry
    let taps: [Float]
    let bias: [Float]
    /// Floats of scratch one run needs.
    public let scratchFloats: Int

    /// Whether `g` is a depthwise 3×3 convolution (one input and one output channel per group).
    public static func applies(to g: GroupedConv2DGeometry) -> Bool {
        g.kernel == 3 && g.groups == g.inC && g.groups == g.outC
    }

    /// Packs weight (C, 1, 3, 3) and bias (C) for `g`, which ``applies(to:)``.
    public init(geometry g: GroupedConv2DGeometry, weight: [Float], bias: [Float]?) {
        precondition(Self.applies(to: g), "not a depthwise 3×3 convolution: \(g)")
        geometry = g
        let cp = (g.inC + 15) / 16 * 16
        shape = bk_depthwise_geometry(channels: Int32(g.inC), padded_channels: Int32(cp), height: Int32(g.inH), width: Int32(g.inW),
                                      out_height: Int32(g.outH), out_width: Int32(g.outW), stride: Int32(g.stride),
                                      pad: Int32(g.pad), dilation: Int32(g.dilation))
        var t = [Float](repeating: 0, count: 9 * cp)
        for c in 0..<g.inC { for k in 0..<9 { t[k * cp + c] = weight[c * 9 + k] } }
        taps = t
        var b = [Float](repeating: 0, count: cp)
        if let bias { for c in 0..<g.inC { b[c] = bias[c] } }
        self.bias = b
        var s = shape
        scratchFloats = bk_depthwise3x3_scratch(&s)
    }

    /// One image: x (C, H, W) → y (C, outH, outW); `scratch` holds ``scratchFloats``.
    public func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, isa: KernelISA) {
        var s = shape
        taps.withUnsafeBufferPointer { t in
            bias.withUnsafeBufferPointer { b in
                bk_depthwise3x3(isa.rawValue, &s, x, t.baseAddress!, b.baseAddress!, scratch, y)
            }
        }
    }
}
