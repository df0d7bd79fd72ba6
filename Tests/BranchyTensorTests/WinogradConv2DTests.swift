import BranchyTensor
import Testing

/// Winograd F(2×2, 3×3) against its plain twin, the reference convolution (the definition,
/// one sum per output), on every kernel path.
@Suite struct WinogradConv2DTests {
    static let geometries = [
        Conv2DGeometry(inC: 16, inH: 4, inW: 4, outC: 16, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 96, inH: 4, inW: 4, outC: 96, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 32, inH: 7, inW: 7, outC: 24, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 17, inH: 5, inW: 6, outC: 33, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 20, inH: 1, inW: 3, outC: 18, kH: 3, kW: 3, stride: 1, pad: 1),
    ]

    /// Runs `n` images through `conv` and returns each image's compact output.
    static func outputs(_ conv: WinogradConv2D, _ x: Tensor, relu: Bool = false) -> [Float] {
        let g = conv.geometry, n = x.batch
        var buffer = [Float](repeating: .nan, count: conv.bufferFloats(n))
        var map = [Float](repeating: .nan, count: conv.mapFloats(n))
        var y = [Float](repeating: .nan, count: n * g.outputCount)
        x.data.withUnsafeBufferPointer { xp in buffer.withUnsafeMutableBufferPointer { bp in
            map.withUnsafeMutableBufferPointer { mp in y.withUnsafeMutableBufferPointer { yp in
                conv.run(n, xp.baseAddress!, xStride: g.inputCount, buffer: bp.baseAddress!, map: mp.baseAddress!, relu: relu)
                for s in 0..<n { conv.unpack(mp.baseAddress!, image: s, pool: nil, into: yp.baseAddress! + s * g.outputCount) }
            } }
        } }
        return y
    }

    @Test(arguments: geometries)
    func matchesReferenceOnEveryPath(g: Conv2DGeometry) {
        #expect(WinogradConv2D.suits(g))
        let x = randomTensor([3, g.inC, g.inH, g.inW], seed: 30)
        let w = randomTensor([g.outC, g.inC, 3, 3], seed: 31)
        let b = randomTensor([g.outC], seed: 32)
        let ref = Conv2DReference.forward(g, x: x, weight: w, bias: b).data
        let scale = max(1, ref.map(abs).max()!)
        for isa in KernelISA.supported {
            let conv = WinogradConv2D(geometry: g, weight: w.data, bias: b.data, isa: isa)
            let got = Self.outputs(conv, x)
            #expect(maxDifference(got, ref) <= 1e-5 * scale, "\(g) on \(isa)")
            #expect(Self.outputs(conv, x, relu: true) == got.map { $0 > 0 ? $0 : 0 }, "ReLU \(g) on \(isa)")
        }
    }

    /// An image's output has the same bits alone as in a batch, at any position.
    @Test(arguments: geometries)
    func batchDoesNotChangeResults(g: Conv2DGeometry) {
        let x = randomTensor([5, g.inC, g.inH, g.inW], seed: 40)
        let w = randomTensor([g.outC, g.inC, 3, 3], seed: 41)
        for isa in KernelISA.supported {
            let conv = WinogradConv2D(geometry: g, weight: w.data, bias: nil, isa: isa)
            let together = Self.outputs(conv, x)
            let alone = (0..<5).flatMap { s in
                Self.outputs(conv, Tensor(shape: [1, g.inC, g.inH, g.inW],
                                          data: Array(x.data[s * g.inputCount..<(s + 1) * g.inputCount])))
            }
            #expect(together == alone, "\(g) on \(isa)")
        }
    }

    /// The AVX2 and AVX-512 paths give the same bits (transforms that only add, products that
    /// are one chain of fused multiply-adds per element).
    @Test(.enabled(if: KernelISA.avx2.isSupported && KernelISA.avx512.isSupported, "needs a CPU with AVX-512"))
    func wideAndNarrowPathsAgreeBitForBit() throws {
        for g in Self.geometries {
            let x = randomTensor([4, g.inC, g.inH, g.inW], seed: 50)
            let w = randomTensor([g.outC, g.inC, 3, 3], seed: 51)
            let b = randomTensor([g.outC], seed: 52)
            #expect(Self.outputs(WinogradConv2D(geometry: g, weight: w.data, bias: b.data, isa: .avx2), x)
                    == Self.outputs(WinogradConv2D(geometry: g, weight: w.data, bias: b.data, isa: .avx512), x), "\(g)")
        }
    }

    @Test func onlySuitableGeometries() {
        #expect(!WinogradConv2D.suits(Conv2DGeometry(inC: 8, inH: 4, inW: 4, outC: 32, kH: 3, kW: 3, stride: 1, pad: 1)))
        #expect(!WinogradConv2D.suits(Conv2DGeometry(inC: 32, inH: 4, inW: 4, outC: 32, kH: 3, kW: 3, stride: 2, pad: 1)))
        #expect(!WinogradConv2D.suits(Conv2DGeometry(inC: 32, inH: 4, inW: 4, outC: 32, kH: 3, kW: 3, stride: 1, pad: 0)))
        #expect(!WinogradConv2D.suits(Conv2DGeometry(inC: 32, inH: 4, inW: 4, outC: 32, kH: 5, kW: 5, stride: 1, pad: 1)))
    }
}
