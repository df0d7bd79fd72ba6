import CBranchyKernels

/// Shape of a 2-D convolution: input (C, H, W), weight (outC, C, kH, kW), output (outC, outH, outW).
public struct Conv2DGeometry: Sendable, Hashable {
    public var inC: Int, inH: Int, inW: Int
    public var outC: Int, kH: Int, kW: Int
    public var stride: Int, pad: Int

    public init(inC: Int, inH: Int, inW: Int, outC: Int, kH: Int, kW: Int, stride: Int = 1, pad: Int = 0) {
        self.inC = inC; self.inH = inH; self.inW = inW
        self.outC = outC; self.kH = kH; self.kW = kW
        self.stride = stride; self.pad = pad
    }

    /// Output extents; 0 when the kernel is larger than the padded input (`/` truncates toward
    /// zero, so a negative span must not be divided).
    public var outH: Int { Self.outSize(inH + 2 * pad - kH, stride) }
    public var outW: Int { Self.outSize(inW + 2 * pad - kW, stride) }
    private static func outSize(_ span: Int, _ stride: Int) -> Int { span < 0 ? 0 : span / stride + 1 }
    /// Rows of the im2col matrix: C·kH·kW.
    public var patch: Int { inC * kH * kW }
    /// Columns of the im2col matrix: outH·outW.
    public var positions: Int { outH * outW }
    public var inputCount: Int { inC * inH * inW }
    public var outputCount: Int { outC * outH * outW }
    public var weightCount: Int { outC * patch }
}

/// Convolution by im2col + GEMM, batched and split over cores by sample.
public enum Conv2D {
    /// Unfolds one image x: (C, H, W) into col: (C·kH·kW, outH·outW).
    public static func im2col(_ g: Conv2DGeometry, _ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        bk_im2col(Int32(g.inC), Int32(g.inH), Int32(g.inW), Int32(g.kH), Int32(g.kW), Int32(g.stride), Int32(g.pad),
                  Int32(g.outH), Int32(g.outW), x, col, g.positions)
    }

    /// Folds col: (C·kH·kW, outH·outW) back into dx: (C, H, W), summing overlaps. dx must be zeroed.
    @inlinable
    public static func col2im(_ g: Conv2DGeometry, _ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        let oh = g.outH, ow = g.outW, hw = oh * ow
        var row = 0
        for c in 0..<g.inC {
            let xc = dx + c * g.inH * g.inW
            for ki in 0..<g.kH {
                for kj in 0..<g.kW {
                    let src = col + row * hw
                    for oy in 0..<oh {
                        let iy = oy * g.stride - g.pad + ki
                        if iy < 0 || iy >= g.inH { continue }
                        let xr = xc + iy * g.inW
                        let s = src + oy * ow
                        for ox in 0..<ow {
                            let ix = ox * g.stride - g.pad + kj
                            if ix >= 0 && ix < g.inW { xr[ix] += s[ox] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// y: (N, outC, outH, outW) = conv(x: (N, C, H, W), w: (outC, C, kH, kW)) + b: (outC).
    ///
    /// Runs the packed convolution of the active kernel path, so training sees the same
    /// arithmetic as compiled inference.
    public static func forward(_ g: Conv2DGeometry, x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = x.count / g.inputCount
        var y = Tensor(shape: [n, g.outC, g.outH, g.outW])
        let packed = PackedConv2D(geometry: g, weight: weight.data, bias: bias?.data)
        x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
            let xb = xp.baseAddress!, yb = yp.baseAddress!
            Parallel.forEachChunk(n, minimumPerThread: 2) { range in
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: packed.bufferFloats)
                let map = UnsafeMutablePointer<Float>.allocate(capacity: max(1, packed.mapFloats))
                buffer.initialize(repeating: 0, count: packed.bufferFloats)
                defer { buffer.deallocate(); map.deallocate() }
                for s in range {
                    packed.map(xb + s * g.inputCount, buffer: buffer, map: map, relu: false)
                    packed.unpack(map, pool: nil, into: yb + s * g.outputCount)
                }
            }
        } }
        return y
    }

    /// Gradients of `forward`: returns dx and accumulates into dWeight and dBias.
    public static func backward(_ g: Conv2DGeometry, x: Tensor, weight: Tensor, dy: Tensor,
                                dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool = true) -> Tensor? {
        let n = x.count / g.inputCount
        let patch = g.patch, hw = g.positions
        var dx = needInputGradient ? Tensor(shape: x.shape) : nil
        let workers = min(Parallel.threads, max(1, n / 2))
        var dwParts = [Float](repeating: 0, count: workers * g.weightCount)
        var dbParts = [Float](repeating: 0, count: workers * g.outC)
        var dxData = dx?.data ?? []
        x.data.withUnsafeBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { wp in
        dy.data.withUnsafeBufferPointer { dyp in
        dwParts.withUnsafeMutableBufferPointer { dwp in
        dbParts.withUnsafeMutableBufferPointer { dbp in
        dxData.withUnsafeMutableBufferPointer { dxp in
            let xb = xp.baseAddress!, wb = wp.baseAddress!, dyb = dyp.baseAddress!
            let dwb = dwp.baseAddress!, dbb = dbp.baseAddress!
            let dxb = needInputGradient ? dxp.baseAddress : nil
            _ = Parallel.forEachWorker(n, minimumPerThread: 2) { w, range in
                let col = UnsafeMutablePointer<Float>.allocate(capacity: patch * hw)
                let dcol = UnsafeMutablePointer<Float>.allocate(capacity: patch * hw)
                defer { col.deallocate(); dcol.deallocate() }
                let dwW = dwb + w * g.weightCount
                let dbW = dbb + w * g.outC
                for s in range {
                    let dys = dyb + s * g.outputCount
                    im2col(g, xb + s * g.inputCount, col)
                    // dW[outC, patch] += dy[outC, hw] · col[patch, hw]ᵀ
                    Gemm.nt(g.outC, patch, hw, dys, col, dwW, accumulate: true)
                    for o in 0..<g.outC {
                        var sum: Float = 0
                        let r = dys + o * hw
                        for j in 0..<hw { sum += r[j] }
                        dbW[o] += sum
                    }
                    if let dxb {
                        // dcol[patch, hw] = w[outC, patch]ᵀ · dy[outC, hw]
                        Gemm.tn(patch, hw, g.outC, wb, dys, dcol, accumulate: false)
                        col2im(g, dcol, dxb + s * g.inputCount)
                    }
                }
            }
        } } } } } }
        for w in 0..<workers {
            for i in 0..<g.weightCount { dWeight.data[i] += dwParts[w * g.weightCount + i] }
            if dBias != nil { for o in 0..<g.outC { dBias!.data[o] += dbParts[w * g.outC + o] } }
        }
        if needInputGradient { dx!.data = dxData }
        return dx
    }
}

/// Direct-loop reference twin of `Conv2D`, kept for tests.
public enum Conv2DReference {
    public static func forward(_ g: Conv2DGeometry, x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = x.count / g.inputCount
        var y = Tensor(shape: [n, g.outC, g.outH, g.outW])
        for s in 0..<n { for o in 0..<g.outC { for oy in 0..<g.outH { for ox in 0..<g.outW {
            var acc: Float = bias?.data[o] ?? 0
            for c in 0..<g.inC { for ki in 0..<g.kH { for kj in 0..<g.kW {
                let iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj
                if iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW { continue }
                acc += x.data[((s * g.inC + c) * g.inH + iy) * g.inW + ix] * weight.data[((o * g.inC + c) * g.kH + ki) * g.kW + kj]
            } } }
            y.data[((s * g.outC + o) * g.outH + oy) * g.outW + ox] = acc
        } } } }
        return y
    }

    public static func backward(_ g: Conv2DGeometry, x: Tensor, weight: Tensor, dy: Tensor) -> (dx: Tensor, dw: Tensor, db: Tensor) {
        let n = x.count / g.inputCount
        var dx = Tensor(shape: x.shape), dw = Tensor(shape: weight.shape), db = Tensor(shape: [g.outC])
        for s in 0..<n { for o in 0..<g.outC { for oy in 0..<g.outH { for ox in 0..<g.outW {
            let d = dy.data[((s * g.outC + o) * g.outH + oy) * g.outW + ox]
            db.data[o] += d
            for c in 0..<g.inC { for ki in 0..<g.kH { for kj in 0..<g.kW {
                let iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj
                if iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW { continue }
                let xi = ((s * g.inC + c) * g.inH + iy) * g.inW + ix
                let wi = ((o * g.inC + c) * g.kH + ki) * g.kW + kj
                dw.data[wi] += d * x.data[xi]
                dx.data[xi] += d * weight.data[wi]
            } } }
        } } } }
        return (dx, dw, db)
    }
}
