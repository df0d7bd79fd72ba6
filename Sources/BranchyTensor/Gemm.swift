import CBranchyKernels

/// Single-precision matrix products over flat row-major buffers.
///
/// Three layouts cover every use in the network:
/// - `nn`: C[M,N] (+)= A[M,K] · B[K,N]
/// - `nt`: C[M,N] (+)= A[M,K] · B[N,K]ᵀ
/// - `tn`: C[M,N] (+)= A[K,M]ᵀ · B[K,N]
/// Each has a naive reference twin in `GemmReference` that tests compare against. All run
/// the cache-blocked, packed product of the C kernels (`bk_sgemm`) on the active ISA path;
/// strides express the transposes, so nothing is transposed in memory.
public enum Gemm {
    /// C[M,N] (+)= A[M,K] · B[K,N].
    public static func nn(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool, isa: KernelISA = .active) {
        product(m, n, k, a, k, 1, b, n, 1, c, n, accumulate, isa)
    }

    /// C[M,N] (+)= A[M,K] · B[N,K]ᵀ (rows of A dotted with rows of B).
    public static func nt(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool, isa: KernelISA = .active) {
        product(m, n, k, a, k, 1, b, 1, k, c, n, accumulate, isa)
    }

    /// C[M,N] (+)= A[K,M]ᵀ · B[K,N].
    public static func tn(_ m: Int, _ n: Int, _ k: Int,
                          _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, accumulate: Bool, isa: KernelISA = .active) {
        product(m, n, k, a, 1, m, b, n, 1, c, n, accumulate, isa)
    }

    /// Rows `rows` of C[M,N] += A[K,M]ᵀ · B[K,N], where A has row stride `m`.
    public static func tnStrided(_ rows: Range<Int>, _ m: Int, _ n: Int, _ k: Int,
                                 _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                                 isa: KernelISA = .active) {
        product(rows.count, n, k, a + rows.lowerBound, 1, m, b, n, 1, c + rows.lowerBound * n, n, true, isa)
    }

    /// C (row stride ldc) (+)= A · B with element (i, p) of A at a[i·ars + p·acs] and (p, j) of B at b[p·brs + j·bcs].
    @inline(__always)
    static func product(_ m: Int, _ n: Int, _ k: Int,
                        _ a: UnsafePointer<Float>, _ ars: Int, _ acs: Int,
                        _ b: UnsafePointer<Float>, _ brs: Int, _ bcs: Int,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool, _ isa: KernelISA) {
        let path = isa.isSupported ? isa : .best
        bk_sgemm(path.rawValue, Int32(m), Int32(n), Int32(k), a, ars, acs, b, brs, bcs, c, ldc, accumulate ? 1 : 0, nil)
    }

    /// C[M,N] = A[M,K] · B[K,N] with the M rows split across up to `threads` threads.
    public static func parallelNN(_ m: Int, _ n: Int, _ k: Int,
                                  _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ c: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        let mr = isa.mr
        let blocks = (m + mr - 1) / mr
        Parallel.forEachChunk(blocks) { r in
            let lo = r.lowerBound * mr, hi = min(m, r.upperBound * mr)
            product(hi - lo, n, k, a + lo * k, k, 1, b, n, 1, c + lo * n, n, false, isa)
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
