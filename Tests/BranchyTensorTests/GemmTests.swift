import BranchyTensor
import Testing

@Suite struct GemmTests {
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
