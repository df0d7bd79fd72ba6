import BranchyTensor
import Testing

@Suite struct GemmTests {
    static let shapes = [(1, 1, 1), (3, 5, 7), (4, 4, 4), (9, 13, 17), (33, 10, 64), (13, 70, 300), (40, 33, 520)]

    /// Every kernel path this CPU supports, against the reference twin.
    @Test(arguments: KernelISA.supported)
    func everyPathMatchesReference(isa: KernelISA) {
        for (m, n, k) in Self.shapes { check(m: m, n: n, k: k, isa: isa) }
    }

    /// The AVX2 and AVX-512 paths round the same way (one fused multiply-add chain per element).
    @Test(.enabled(if: KernelISA.avx2.isSupported && KernelISA.avx512.isSupported, "needs a CPU with AVX-512"))
    func fusedPathsAgreeBitForBit() throws {
        for (m, n, k) in Self.shapes {
            let a = randomTensor([m * k], seed: 11).data, b = randomTensor([k * n], seed: 12).data
            var c2 = [Float](repeating: 0, count: m * n), c5 = c2
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                c2.withUnsafeMutableBufferPointer { Gemm.nn(m, n, k, ap.baseAddress!, bp.baseAddress!, $0.baseAddress!, accumulate: false, isa: .avx2) }
                c5.withUnsafeMutableBufferPointer { Gemm.nn(m, n, k, ap.baseAddress!, bp.baseAddress!, $0.baseAddress!, accumulate: false, isa: .avx512) }
            } }
            #expect(c2 == c5, "m \(m) n \(n) k \(k)")
        }
    }

    @Test func namesRoundTrip() {
        for isa in KernelISA.allCases { #expect(KernelISA(name: isa.description) == isa) }
        #expect(KernelISA(name: "sse9") == nil)
        #expect(KernelISA.supported.contains(.baseline))
        #expect(KernelISA.best.isSupported)
    }

    func check(m: Int, n: Int, k: Int, isa: KernelISA) {
        let a = randomTensor([m * k], seed: 1).data, b = randomTensor([k * n], seed: 2).data
        let at = randomTensor([k * m], seed: 3).data, bt = randomTensor([n * k], seed: 4).data
        let tolerance = 1e-5 * Float(k).squareRoot() * 4
        for accumulate in [false, true] {
            let start = randomTensor([m * n], seed: 5).data
            var fast = start, ref = start
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.nn(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate, isa: isa)
            } } }
            GemmReference.nn(m, n, k, a, b, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < tolerance, "\(isa) nn \(m)×\(n)×\(k)")
            fast = start; ref = start
            a.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.nt(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate, isa: isa)
            } } }
            GemmReference.nt(m, n, k, a, bt, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < tolerance, "\(isa) nt \(m)×\(n)×\(k)")
            fast = start; ref = start
            at.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.tn(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate, isa: isa)
            } } }
            GemmReference.tn(m, n, k, at, b, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < tolerance, "\(isa) tn \(m)×\(n)×\(k)")
        }
    }

    @Test(arguments: [(1, 1, 1), (3, 5, 7), (4, 4, 4), (9, 13, 17), (33, 10, 64)])
    func fastMatchesReference(m: Int, n: Int, k: Int) {
        let a = randomTensor([m * k], seed: 1).data, b = randomTensor([k * n], seed: 2).data
        let at = randomTensor([k * m], seed: 3).data, bt = randomTensor([n * k], seed: 4).data
        for accumulate in [false, true] {
            let start = randomTensor([m * n], seed: 5).data
            var fast = start, ref = start
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.nn(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate)
            } } }
            GemmReference.nn(m, n, k, a, b, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < 1e-4)

            fast = start; ref = start
            a.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.nt(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate)
            } } }
            GemmReference.nt(m, n, k, a, bt, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < 1e-4)

            fast = start; ref = start
            at.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in fast.withUnsafeMutableBufferPointer { cp in
                Gemm.tn(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, accumulate: accumulate)
            } } }
            GemmReference.tn(m, n, k, at, b, &ref, accumulate: accumulate)
            #expect(maxDifference(fast, ref) < 1e-4)
        }
    }
}
