/// Fully connected layer with PyTorch's weight layout: weight (out, in), bias (out).
public enum Linear {
    /// y: (N, out) = x: (N, in) · weightᵀ + bias.
    public static func forward(x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let outF = weight.shape[0], inF = weight.shape[1]
        let n = x.count / inF
        var y = Tensor(shape: [n, outF])
        x.data.withUnsafeBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { wp in
        y.data.withUnsafeMutableBufferPointer { yp in
            let xb = xp.baseAddress!, wb = wp.baseAddress!, yb = yp.baseAddress!
            Parallel.forEachChunk(n, minimumPerThread: 32) { r in
                Gemm.nt(r.count, outF, inF, xb + r.lowerBound * inF, wb, yb + r.lowerBound * outF, accumulate: false)
            }
        } } }
        if let bias {
            for s in 0..<n { for o in 0..<outF { y.data[s * outF + o] += bias.data[o] } }
        }
        return y
    }

    /// Returns dx: (N, in) and accumulates dWeight += dyᵀ·x, dBias += Σ dy.
    public static func backward(x: Tensor, weight: Tensor, dy: Tensor,
                                dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool = true) -> Tensor? {
        let outF = weight.shape[0], inF = weight.shape[1]
        let n = x.count / inF
        x.data.withUnsafeBufferPointer { xp in
        dy.data.withUnsafeBufferPointer { dyp in
        dWeight.data.withUnsafeMutableBufferPointer { dwp in
            let xb = xp.baseAddress!, dyb = dyp.baseAddress!, dwb = dwp.baseAddress!
            // dW[out, in] += dy[N, out]ᵀ · x[N, in], split by output rows.
            Parallel.forEachChunk(outF, minimumPerThread: 8) { r in
                Gemm.tnStrided(r, outF, inF, n, dyb, xb, dwb)
            }
        } } }
        if dBias != nil {
            for s in 0..<n { for o in 0..<outF { dBias!.data[o] += dy.data[s * outF + o] } }
        }
        guard needInputGradient else { return nil }
        var dx = Tensor(shape: x.shape)
        dy.data.withUnsafeBufferPointer { dyp in
        weight.data.withUnsafeBufferPointer { wp in
        dx.data.withUnsafeMutableBufferPointer { dxp in
            let dyb = dyp.baseAddress!, wb = wp.baseAddress!, dxb = dxp.baseAddress!
            Parallel.forEachChunk(n, minimumPerThread: 32) { r in
                // dx[N, in] = dy[N, out] · w[out, in]
                Gemm.nn(r.count, inF, outF, dyb + r.lowerBound * outF, wb, dxb + r.lowerBound * inF, accumulate: false)
            }
        } } }
        return dx
    }
}

