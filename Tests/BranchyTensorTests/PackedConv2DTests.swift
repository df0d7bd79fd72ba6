import BranchyTensor
import Testing

/// A 1×1 convolution read and written in place gives the bits of the padded-map form.
@Suite struct PackedConv2DTests {
    /// Plane sizes below, at and past whole tiles of every path (NR = 8, 16, 32), so the last
    /// partial tile goes through the scratch panel, half tile or whole.
    static let geometries = [(48, 14, 14, 16), (16, 7, 7, 64), (64, 4, 4, 24), (5, 8, 4, 3), (3, 1, 17, 13), (24, 2, 24, 40)]
        .map { Conv2DGeometry(inC: $0.0, inH: $0.1, inW: $0.2, outC: $0.3, kH: 1, kW: 1) }

    @Test(arguments: geometries)
    func pointwiseInPlaceIsThePaddedMapForm(g: Conv2DGeometry) {
        let x = randomTensor([g.inC, g.inH, g.inW], seed: 60)
        let w = randomTensor([g.outC, g.inC, 1, 1], seed: 61)
        let b = randomTensor([g.outC], seed: 62)
        let ref = Conv2DReference.forward(g, x: Tensor(shape: [1, g.inC, g.inH, g.inW], data: x.data), weight: w, bias: b).data
        for isa in KernelISA.supported {
            let conv = PackedConv2D(geometry: g, weight: w.data, bias: b.data, isa: isa)
            #expect(conv.pointwise, "\(g) on \(isa)")
            for relu in [false, true] {
                var buffer = [Float](repeating: 0, count: conv.bufferFloats)
                var map = [Float](repeating: .nan, count: conv.mapFloats)
                var padded = [Float](repeating: .nan, count: g.outputCount), inPlace = padded
                x.data.withUnsafeBufferPointer { xp in
                    conv.map(xp.baseAddress!, buffer: &buffer, map: &map, relu: relu)
                    map.withUnsafeBufferPointer { conv.unpack($0.baseAddress!, pool: nil, into: &padded) }
                    var scratch = [Float](repeating: .nan, count: conv.bufferFloats)
                    conv.mapPointwise(xp.baseAddress!, buffer: &scratch, into: &inPlace, relu: relu)
                }
                #expect(inPlace.map(\.bitPattern) == padded.map(\.bitPattern), "\(g) relu \(relu) on \(isa)")
                if !relu { #expect(maxDifference(inPlace, ref) < 1e-4, "\(g) on \(isa)") }
            }
        }
    }
}
