import BranchyTensor
import Foundation
import Testing

/// The int8 convolution: every path gives the bits of a plain Swift twin of its integer
/// arithmetic, and stays close to the float convolution.
@Suite struct QuantizedConv2DTests {
    /// Channels not a multiple of 4, outputs not a multiple of 8, stride 2, 1×1, and column counts
    /// below, at and past the tiles of every path (8, 16, 32).
    static let geometries = [
        Conv2DGeometry(inC: 1, inH: 28, inW: 28, outC: 8, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 32, inH: 7, inW: 7, outC: 32, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 6, inH: 4, inW: 4, outC: 13, kH: 3, kW: 3, stride: 1, pad: 1),
        Conv2DGeometry(inC: 5, inH: 9, inW: 11, outC: 7, kH: 3, kW: 3, stride: 2, pad: 1),
        Conv2DGeometry(inC: 8, inH: 14, inW: 14, outC: 2, kH: 1, kW: 1, stride: 1, pad: 0),
        Conv2DGeometry(inC: 3, inH: 6, inW: 5, outC: 9, kH: 5, kW: 5, stride: 1, pad: 2),
    ]

    /// The twin: each output as Σ (q_x − zero point) · q_w over the taps inside the image, then one
    /// fused multiply-add with the combined scale and the bias.
    static func twin(_ g: Conv2DGeometry, _ conv: QuantizedConv2D, x: [Float], weight: [Float], bias: [Float], relu: Bool) -> [Float] {
        let zp = conv.input.zeroPoint
        let inv = 1 / conv.input.scale
        let qx = x.map { v -> Int in
            let t = v * inv
            let c = t.isNaN ? -1024 : Int(max(-1024, min(1024, t)).rounded(.toNearestOrEven))
            return max(0, min(255, c + zp))
        }
        let per = g.inC * g.kH * g.kW
        var y = [Float](repeating: 0, count: g.outputCount)
        for o in 0..<g.outC {
            let s = conv.weightScales[o]
            let qw = (0..<per).map { Int(max(-127, min(127, (weight[o * per + $0] / s).rounded(.toNearestOrEven)))) }
            let scale = conv.input.scale * s
            for oy in 0..<g.outH { for ox in 0..<g.outW {
                var acc = 0
                for c in 0..<g.inC { for ki in 0..<g.kH { for kj in 0..<g.kW {
                    let iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj
                    guard iy >= 0, iy < g.inH, ix >= 0, ix < g.inW else { continue }
                    acc += (qx[(c * g.inH + iy) * g.inW + ix] - zp) * qw[(c * g.kH + ki) * g.kW + kj]
                } } }
                let v = bias[o].addingProduct(Float(acc), scale)
                y[(o * g.outH + oy) * g.outW + ox] = relu && !(v > 0) ? 0 : v
            } }
        }
        return y
    }

    @Test(arguments: geometries)
    func everyPathGivesTheTwinsBits(g: Conv2DGeometry) {
        let samples = 3
        var x = randomTensor([samples, g.inC, g.inH, g.inW], seed: 80, range: 2).data
        let w = randomTensor([g.outC, g.inC, g.kH, g.kW], seed: 81).data
        let b = randomTensor([g.outC], seed: 82).data
        let input = ActivationQuantization(min: x.min()!, max: x.max()!)
        // Values past the range, past Int32 and NaN are clamped alike on every path.
        x[0] = .nan; x[1] = 1e30; x[2] = -1e30; x[x.count - 1] = 3 * x.max()!
        for relu in [false, true] {
            let expected = (0..<samples).flatMap { s in
                Self.twin(g, QuantizedConv2D(geometry: g, weight: w, bias: b, input: input, qisa: .baseline),
                          x: Array(x[(s * g.inputCount)..<((s + 1) * g.inputCount)]), weight: w, bias: b, relu: relu)
            }
            for qisa in QuantizedISA.supported {
                let conv = QuantizedConv2D(geometry: g, weight: w, bias: b, input: input, qisa: qisa)
                for n in [1, samples] {
                    var buffer = [Float](repeating: .nan, count: conv.bufferFloats(n))
                    var map = [Float](repeating: .nan, count: conv.mapFloats(n))
                    var y = [Float](repeating: .nan, count: n * g.outputCount)
                    x.withUnsafeBufferPointer { xp in
                        conv.run(n, xp.baseAddress!, xStride: g.inputCount, buffer: &buffer, map: &map, relu: relu)
                    }
                    map.withUnsafeBufferPointer { m in
                        y.withUnsafeMutableBufferPointer { yp in
                            for s in 0..<n {
                                conv.unpack(m.baseAddress!, samples: n, image: s, pool: nil, isa: .active, into: yp.baseAddress! + s * g.outputCount)
                            }
                        }
                    }
                    let differ = zip(y, expected).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }.map(\.offset)
                    #expect(differ.isEmpty, "\(g) relu \(relu) n \(n) on \(qisa): \(differ.count) outputs differ from the twin's, first at \(differ.prefix(4))")
                }
            }
        }
    }

    @Test(arguments: geometries)
    func staysCloseToTheFloatConvolution(g: Conv2DGeometry) {
        let x = randomTensor([1, g.inC, g.inH, g.inW], seed: 83, range: 2)
        let w = randomTensor([g.outC, g.inC, g.kH, g.kW], seed: 84)
        let b = randomTensor([g.outC], seed: 85)
        let ref = Conv2DReference.forward(g, x: x, weight: w, bias: b).data
        let conv = QuantizedConv2D(geometry: g, weight: w.data, bias: b.data, input: ActivationQuantization(min: x.data.min()!, max: x.data.max()!))
        var buffer = [Float](repeating: 0, count: conv.bufferFloats(1)), map = [Float](repeating: 0, count: conv.mapFloats(1))
        x.data.withUnsafeBufferPointer { conv.run(1, $0.baseAddress!, xStride: g.inputCount, buffer: &buffer, map: &map, relu: false) }
        // Each product errs by at most half a step of x times |w| plus half a step of w times |x|.
        let bound = Float(g.inC * g.kH * g.kW) * (conv.input.scale * 0.5 * 1 + (conv.weightScales.max() ?? 0) * 0.5 * 2) + 1e-4
        #expect(maxDifference(map, ref) <= bound, "\(g)")
        #expect(maxDifference(map, ref) > 0, "\(g): int8 gave the float bits, so the test would not see a fault")
    }

    @Test func rangesWidenToIncludeZero() {
        let post = ActivationQuantization(min: 0.5, max: 6)
        #expect(post.zeroPoint == 0 && post.scale == 6 / 255)
        let image = ActivationQuantization(min: -1, max: 3)
        #expect(image.zeroPoint == 64 && image.scale == 4 / 255)
        let flat = ActivationQuantization(min: 0, max: 0)
        #expect(flat.scale == 1 && flat.zeroPoint == 0)
        // Spans whose scale or its reciprocal would not be finite get the scale 1.
        let tiny = ActivationQuantization(min: 0, max: 1e-40)
        #expect(tiny.scale == 1 && tiny.zeroPoint == 0)
        let huge = ActivationQuantization(min: -3e38, max: 3e38)
        #expect(huge.scale == 1 && (0...255).contains(huge.zeroPoint))
    }
}
