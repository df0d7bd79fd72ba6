import CBranchyKernels
import Glibc
import BranchyTensor
import Testing

@Suite struct PoolingTests {
    @Test(arguments: [(30, 15), (15, 8), (17, 9), (11, 6), (28, 14), (7, 4)])
    func ceilModeSizes(input: Int, expected: Int) {
        let g = Pool2DGeometry(channels: 1, inH: input, inW: input, kernel: 2, stride: 2, ceilMode: true)
        #expect(g.outH == expected)
    }

    @Test func floorModeDropsTheRemainder() {
        #expect(Pool2DGeometry(channels: 1, inH: 7, inW: 7, kernel: 2, stride: 2).outH == 3)
    }

    @Test(arguments: [false, true])
    func maxPoolMatchesReference(ceil: Bool) {
        let g = Pool2DGeometry(channels: 3, inH: 9, inW: 7, kernel: 2, stride: 2, ceilMode: ceil)
        let x = randomTensor([2, 3, 9, 7], seed: 50)
        var argmax: [Int32] = []
        let fast = MaxPool2D.forward(g, x: x, argmax: &argmax)
        #expect(fast.data == MaxPool2DReference.forward(g, x: x).data)
    }

    @Test func maxPoolBackwardRoutesToTheMaximum() {
        let g = Pool2DGeometry(channels: 1, inH: 2, inW: 2, kernel: 2, stride: 2)
        let x = Tensor(shape: [1, 1, 2, 2], data: [1, 5, 3, 2])
        var argmax: [Int32] = []
        let y = MaxPool2D.forward(g, x: x, argmax: &argmax)
        #expect(y.data == [5])
        let dx = MaxPool2D.backward(inputShape: x.shape, dy: Tensor(shape: [1, 1, 1, 1], data: [2]), argmax: argmax)
        #expect(dx.data == [0, 2, 0, 0])
    }

    @Test func avgPoolGradientMatchesFiniteDifferences() {
        let g = Pool2DGeometry(channels: 2, inH: 5, inW: 5, kernel: 2, stride: 2, ceilMode: true)
        let x = randomTensor([1, 2, 5, 5], seed: 60)
        let dy = randomTensor([1, 2, g.outH, g.outW], seed: 61)
        func loss(_ x: Tensor) -> Double {
            zip(AvgPool2D.forward(g, x: x).data, dy.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        let dx = AvgPool2D.backward(g, inputShape: x.shape, dy: dy)
        for i in [0, 4, 12, 24, 49] {
            var xp = x, xm = x
            xp.data[i] += 1e-2; xm.data[i] -= 1e-2
            #expect(abs((loss(xp) - loss(xm)) / 2e-2 - Double(dx.data[i])) < 1e-3)
        }
        // The ceil-mode edge window averages the one column it covers.
        let ones = Tensor(shape: [1, 1, 5, 5], repeating: 1)
        let y = AvgPool2D.forward(Pool2DGeometry(channels: 1, inH: 5, inW: 5, kernel: 2, stride: 2, ceilMode: true), x: ones)
        #expect(y.data.allSatisfy { $0 == 1 })
    }
}

/// The 2 × 2 stride-2 max pooling kernel against its reference twin, on every kernel path, with
/// the source planes ending at a page the process may not read and sentinels after the output:
/// whole-vector loads and stores past a row stay inside the planes.
@Suite struct MaxPoolKernelTests {
    /// Channels, rows, columns, ceil mode, floats between source planes (a batch map's gap).
    static let cases: [(c: Int, h: Int, w: Int, ceil: Bool, gap: Int)] = [
        (3, 14, 14, false, 0), (32, 14, 14, false, 0), (5, 8, 8, false, 0), (4, 2, 2, false, 0), (2, 4, 4, false, 3),
        (3, 9, 7, true, 0), (2, 32, 32, false, 0), (3, 6, 30, false, 1), (7, 7, 7, true, 2), (1, 2, 18, false, 0),
    ]

    @Test(arguments: KernelISA.supported)
    func matchesTheReferenceWithinThePlanes(isa: KernelISA) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for t in Self.cases {
            for relu in [false, true] {
                let g = Pool2DGeometry(channels: t.c, inH: t.h, inW: t.w, kernel: 2, stride: 2, ceilMode: t.ceil)
                let x = randomTensor([1, t.c, t.h, t.w], seed: UInt64(t.c * 100 + t.w))
                let planeStride = t.h * t.w + t.gap
                let floats = (t.c - 1) * planeStride + t.h * t.w
                // The source ends where a page nobody may read begins.
                let bytes = (floats * 4 + page - 1) / page * page
                let base = try #require(mmap(nil, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
                #expect(base != MAP_FAILED)
                defer { munmap(base, bytes + page) }
                #expect(mprotect(base + bytes, page, PROT_NONE) == 0)
                let src = (base + bytes - floats * 4).assumingMemoryBound(to: Float.self)
                for ch in 0..<t.c { for i in 0..<(t.h * t.w) { src[ch * planeStride + i] = x.data[ch * t.h * t.w + i] } }
                let outCount = g.outputCount
                var y = [Float](repeating: 12345, count: outCount + 64)
                y.withUnsafeMutableBufferPointer { d in
                    bk_maxpool(isa.rawValue, Int32(t.c), Int32(t.h), Int32(t.w), src, planeStride, t.w, 2, 2, 0,
                               Int32(g.outH), Int32(g.outW), d.baseAddress!, g.outH * g.outW, g.outW, relu ? 1 : 0)
                }
                var want = MaxPool2DReference.forward(g, x: x).data
                if relu { want = want.map { max($0, 0) } }
                #expect(Array(y.prefix(outCount)) == want, "\(isa) \(t) relu \(relu)")
                #expect(y.suffix(64).allSatisfy { $0 == 12345 }, "\(isa) \(t): written past the output")
            }
        }
    }
}
