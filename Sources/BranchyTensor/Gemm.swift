/// Single-precision matrix products over flat row-major buffers.
///
/// Three layouts cover every use in the network:
/// - `nn`: C[M,N] (+)= A[M,K] · B[K,N]
/// - `nt`: C[M,N] (+)= A[M,K] · B[N,K]ᵀ
/// - `tn`: C[M,N] (+)= A[K,M]ᵀ · B[K,N]
/// Each has a naive reference twin in `GemmReference` that tests compare against.
/// The fast versions work on four rows of C at a time so that each row of B read
/// from memory feeds four accumulations, and leave the inner loop to the vectoriser.
public enum Gemm {
    /// C[M,N] (+)= A[M,K] · B[K,N].
    @inlinable
    public static func nn(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if !accumulate { c.update(repeating: 0, count: m * n) }
        var i = 0
        while i + 4 <= m {
            let c0 = c + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
            let a0 = a + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k
            for p in 0..<k {
                let v0 = a0[p], v1 = a1[p], v2 = a2[p], v3 = a3[p]
                let bp = b + p * n
                for j in 0..<n {
                    let bv = bp[j]
                    c0[j] += v0 * bv
                    c1[j] += v1 * bv
                    c2[j] += v2 * bv
                    c3[j] += v3 * bv
                }
            }
            i += 4
        }
        while i < m {
            let ci = c + i * n, ai = a + i * k
            for p in 0..<k {
                let v = ai[p]
                let bp = b + p * n
                for j in 0..<n { ci[j] += v * bp[j] }
            }
            i += 1
        }
    }

    /// C[M,N] (+)= A[M,K] · B[N,K]ᵀ (rows of A dotted with rows of B).
    @inlinable
    public static func nt(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for i in 0..<m {
            let ai = a + i * k
            let ci = c + i * n
            var j = 0
            while j + 4 <= n {
                let b0 = b + j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                for p in 0..<k {
                    let av = ai[p]
                    s0 += av * b0[p]; s1 += av * b1[p]; s2 += av * b2[p]; s3 += av * b3[p]
                }
                if accumulate {
                    ci[j] += s0; ci[j + 1] += s1; ci[j + 2] += s2; ci[j + 3] += s3
                } else {
                    ci[j] = s0; ci[j + 1] = s1; ci[j + 2] = s2; ci[j + 3] = s3
                }
                j += 4
            }
            while j < n {
                let bj = b + j * k
                var s: Float = 0
                for p in 0..<k { s += ai[p] * bj[p] }
                ci[j] = accumulate ? ci[j] + s : s
                j += 1
            }
        }
    }

    /// C[M,N] (+)= A[K,M]ᵀ · B[K,N].
    @inlinable
    public static func tn(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if !accumulate { c.update(repeating: 0, count: m * n) }
        var i = 0
        while i + 4 <= m {
            let c0 = c + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
            for p in 0..<k {
                let ap = a + p * m + i
                let v0 = ap[0], v1 = ap[1], v2 = ap[2], v3 = ap[3]
                let bp = b + p * n
                for j in 0..<n {
                    let bv = bp[j]
                    c0[j] += v0 * bv
                    c1[j] += v1 * bv
                    c2[j] += v2 * bv
                    c3[j] += v3 * bv
                }
            }
            i += 4
        }
        while i < m {
            let ci = c + i * n
            for p in 0..<k {
                let v = a[p * m + i]
                let bp = b + p * n
                for j in 0..<n { ci[j] += v * bp[j] }
            }
            i += 1
        }
    }
}

/// Naive triple-loop twins of `Gemm`, kept for tests.
public enum GemmReference {
    public static func nn(_ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float], _ c: inout [Float], accumulate: Bool) {
        for i in 0..<m { for j in 0..<n {
            var s: Float = accumulate ? c[i * n + j] : 0
            for p in 0..<k { s += a[i * k + p] * b[p * n + j] }
            c[i * n + j] = s
        } }
    }
    public static func nt(_ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float], _ c: inout [Float], accumulate: Bool) {
        for i in 0..<m { for j in 0..<n {
            var s: Float = accumulate ? c[i * n + j] : 0
            for p in 0..<k { s += a[i * k + p] * b[j * k + p] }
            c[i * n + j] = s
        } }
    }
    public static func tn(_ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float], _ c: inout [Float], accumulate: Bool) {
        for i in 0..<m { for j in 0..<n {
            var s: Float = accumulate ? c[i * n + j] : 0
            for p in 0..<k { s += a[p * m + i] * b[p * n + j] }
            c[i * n + j] = s
        } }
    }
}
