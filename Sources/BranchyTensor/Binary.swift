import CBranchyKernels

/// Sign activation trained with the clipped straight-through estimator (BinaryNet, XNOR-Net).
public enum Sign {
    /// y = +1 where x >= 0 (0 and −0 map to +1), else −1 (NaN maps to −1); elementwise.
    public static func forward(_ x: Tensor) -> Tensor {
        var y = x
        y.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = value(p[i]) }
        }
        return y
    }

    /// The sign of one value, as ``forward(_:)`` and the C kernels take it.
    @inlinable public static func value(_ x: Float) -> Float { x >= 0 ? 1 : -1 }

    /// Straight-through with clipping: dx = dy where |x| ≤ 1, else 0 (x is the forward input).
    public static func backward(input x: Tensor, dy: Tensor) -> Tensor {
        var dx = dy
        dx.data.withUnsafeMutableBufferPointer { d in
            x.data.withUnsafeBufferPointer { xp in
                for i in 0..<d.count where !(abs(xp[i]) <= 1) { d[i] = 0 }
            }
        }
        return dx
    }
}

/// XNOR-Net binary fully connected layer, PyTorch weight layout: weight (out, in), bias (out).
///
/// Forward: y[s, o] = α[o] · dot(sign(x[s]), sign(W[o])) + b[o] with α[o] = mean |W[o]| over
/// the row (from the latent float weights). The dot of two ±1 vectors is an exact integer,
/// in − 2 · (positions where the signs differ); y is α times that integer, rounded, plus the
/// bias, rounded again. ``reference(x:weight:bias:)`` computes it with Swift integers,
/// ``forward(x:weight:bias:isa:)`` with the C kernel (XOR and popcount over packed bits);
/// they give the same bits at any batch size.
///
/// Backward (straight-through estimators, the effective weight being Wb[o, i] = α[o] · sign(W[o, i])):
/// - dx[s, i] = (Σₒ dy[s, o] · Wb[o, i]) where |x[s, i]| ≤ 1, else 0;
/// - dW[o, i] += (Σₛ dy[s, o] · sign(x[s, i])) where |W[o, i]| ≤ 1, else 0 — the gradient of the
///   effective weight passed to the latent weight (α treated as a constant);
/// - db[o] += Σₛ dy[s, o].
public enum BinaryLinear {
    /// α[o] = mean |W[o, ·]|, summed in index order.
    public static func scales(weight: Tensor) -> [Float] {
        let outF = weight.shape[0], inF = weight.shape[1]
        return (0..<outF).map { o in
            var sum: Float = 0
            for i in 0..<inF { sum += abs(weight.data[o * inF + i]) }
            return sum / Float(inF)
        }
    }

    /// The exact integer dot product of sign(a) and sign(b) over n elements.
    @inlinable public static func signDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Int {
        var differ = 0
        for i in 0..<n where (a[i] >= 0) != (b[i] >= 0) { differ += 1 }
        return n - 2 * differ
    }

    /// The Swift reference: y (N, out) from x (N, in), computed element by element.
    public static func reference(x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let outF = weight.shape[0], inF = weight.shape[1]
        let n = x.count / inF
        let alpha = scales(weight: weight)
        var y = Tensor(shape: [n, outF])
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                for s in 0..<n { for o in 0..<outF {
                    let dot = signDot(xp.baseAddress! + s * inF, wp.baseAddress! + o * inF, inF)
                    let v = alpha[o] * Float(dot)
                    y.data[s * outF + o] = bias.map { v + $0.data[o] } ?? v
                } }
            }
        }
        return y
    }

    /// Weight signs packed for ``forward(x:packedWeight:alpha:bias:outputs:isa:)``: `out` rows of
    /// `bk_sign_words(in)` words.
    public static func packWeight(_ weight: Tensor) -> [UInt64] {
        let outF = weight.shape[0], inF = weight.shape[1]
        var bits = [UInt64](repeating: 0, count: outF * bk_sign_words(Int32(inF)))
        weight.data.withUnsafeBufferPointer { w in
            bits.withUnsafeMutableBufferPointer { b in bk_pack_signs(Int32(outF), Int32(inF), w.baseAddress!, inF, b.baseAddress!) }
        }
        return bits
    }

    /// y (N, out) by the C XNOR/popcount kernel, α computed from `weight`.
    public static func forward(x: Tensor, weight: Tensor, bias: Tensor?, isa: KernelISA = .active) -> Tensor {
        forward(x: x, packedWeight: packWeight(weight), alpha: scales(weight: weight), bias: bias?.data,
                outputs: weight.shape[0], isa: isa)
    }

    /// y (N, out) by the C kernel from weights packed once.
    public static func forward(x: Tensor, packedWeight: [UInt64], alpha: [Float], bias: [Float]?, outputs outF: Int,
                               isa: KernelISA = .active) -> Tensor {
        let inF = x.itemCount, n = x.batch
        var y = Tensor(shape: [n, outF])
        var scratch = [UInt64](repeating: 0, count: n * bk_sign_words(Int32(inF)))
        x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
        packedWeight.withUnsafeBufferPointer { w in
        alpha.withUnsafeBufferPointer { a in
        scratch.withUnsafeMutableBufferPointer { sp in
        bias.withUnsafeBufferPointerOrNil { b in
            bk_xnor_linear(isa.rawValue, Int32(n), Int32(inF), Int32(outF), xp.baseAddress!, inF, w.baseAddress!,
                           a.baseAddress!, b, yp.baseAddress!, outF, sp.baseAddress!)
        } } } } } }
        return y
    }

    /// Returns dx (N, in) (or nil) and accumulates dWeight and dBias by the estimators above.
    public static func backward(x: Tensor, weight: Tensor, dy: Tensor, dWeight: inout Tensor, dBias: inout Tensor?,
                                needInputGradient: Bool = true) -> Tensor? {
        let outF = weight.shape[0], inF = weight.shape[1]
        let n = x.count / inF
        let alpha = scales(weight: weight)
        x.data.withUnsafeBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { wp in
        dy.data.withUnsafeBufferPointer { dyp in
        dWeight.data.withUnsafeMutableBufferPointer { dw in
            for o in 0..<outF {
                for i in 0..<inF where abs(wp[o * inF + i]) <= 1 {
                    var g: Float = 0
                    for s in 0..<n { g += dyp[s * outF + o] * Sign.value(xp[s * inF + i]) }
                    dw[o * inF + i] += g
                }
            }
        } } } }
        if dBias != nil {
            for s in 0..<n { for o in 0..<outF { dBias!.data[o] += dy.data[s * outF + o] } }
        }
        guard needInputGradient else { return nil }
        var dx = Tensor(shape: x.shape)
        x.data.withUnsafeBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { wp in
        dy.data.withUnsafeBufferPointer { dyp in
        dx.data.withUnsafeMutableBufferPointer { dxp in
            for s in 0..<n {
                for i in 0..<inF where abs(xp[s * inF + i]) <= 1 {
                    var g: Float = 0
                    for o in 0..<outF { g += dyp[s * outF + o] * alpha[o] * Sign.value(wp[o * inF + i]) }
                    dxp[s * inF + i] = g
                }
            }
        } } } }
        return dx
    }
}
