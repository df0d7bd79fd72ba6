import Testing
@testable import BranchyTensor

/// A small deterministic generator so the tests do not depend on the system RNG.
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) / Float(1 << 24)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }
}

private func randomTensor(_ shape: [Int], in range: ClosedRange<Float>, seed: UInt64) -> Tensor {
    var rng = SplitMix64(state: seed)
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in rng.float(in: range) })
}

private func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

@Suite("FeatureCodec")
struct FeatureCodecTests {
    @Test("codec names parse and print", arguments: FeatureCodecKind.allCases)
    func names(kind: FeatureCodecKind) {
        #expect(FeatureCodecKind(kind.name) == kind)
        #expect(FeatureCodecKind(kind.name.uppercased()) == kind)
        #expect(FeatureCodecKind(rawValue: kind.rawValue) == kind)
    }

    @Test func unknownNameIsRejected() {
        #expect(FeatureCodecKind("bfloat16") == nil)
        #expect(FeatureCodecKind("") == nil)
    }

    @Test func rawValuesAreStable() {
        #expect(FeatureCodecKind.float32.rawValue == 0)
        #expect(FeatureCodecKind.float16.rawValue == 1)
        #expect(FeatureCodecKind.int8.rawValue == 2)
        #expect(FeatureCodecKind.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5, 6])
        #expect(FeatureCodecKind.allCases.map { $0.dataByteCount(elements: 16) } == [64, 32, 16, 16, 16, 8, 2])
    }

    @Test("roundTrip is bit-identical to encode then decode", arguments: FeatureCodecKind.allCases)
    func roundTripMatchesEncodeDecode(kind: FeatureCodecKind) throws {
        for seed in UInt64(1)...20 {
            let t = randomTensor([2, 3, 4, 5], in: -7...11, seed: seed)
            let encoded = kind.encode(t)
            #expect(encoded.bytes.count == kind.dataByteCount(elements: t.count))
            #expect(encoded.shape == t.shape)
            #expect((encoded.quantization != nil) == (kind == .int8))
            let viaBytes = (try encoded.decoded())
            let direct = kind.roundTrip(t)
            #expect(viaBytes.shape == t.shape)
            #expect(bits(viaBytes) == bits(direct))
        }
    }

    @Test func float32IsLossless() throws {
        let t = Tensor(shape: [5], data: [0, -0.0, 1.5, -3.25e-30, Float.greatestFiniteMagnitude])
        let back = (try FeatureCodecKind.float32.encode(t).decoded())
        #expect(bits(back) == bits(t))
    }

    @Test func float32BytesAreLittleEndian() {
        let e = FeatureCodecKind.float32.encode(Tensor(shape: [1], data: [1.0]))
        #expect(e.bytes == [0x00, 0x00, 0x80, 0x3F])
        let h = FeatureCodecKind.float16.encode(Tensor(shape: [1], data: [1.0]))
        #expect(h.bytes == [0x00, 0x3C])
    }

    @Test func float16ErrorIsBounded() {
        let t = randomTensor([1000], in: -100...100, seed: 7)
        let back = FeatureCodecKind.float16.roundTrip(t)
        for (x, y) in zip(t.data, back.data) {
            // binary16 has an 11-bit significand: relative error at most 2^-11.
            #expect(abs(x - y) <= abs(x) * 0x1p-11 + 0x1p-24)
        }
    }

    @Test func float16SaturatesInsteadOfOverflowing() {
        let t = Tensor(shape: [4], data: [1e6, -1e6, 65504, 70000])
        let back = FeatureCodecKind.float16.roundTrip(t)
        #expect(back.data == [65504, -65504, 65504, 65504])
        #expect(back.data.allSatisfy { $0.isFinite })
    }

    @Test func int8ErrorIsBoundedByHalfAStep() throws {
        for seed in UInt64(1)...10 {
            let t = randomTensor([64, 8], in: -3...5, seed: seed)
            let e = FeatureCodecKind.int8.encode(t)
            let q = try! #require(e.quantization)
            let back = (try e.decoded())
            let lo = min(0, t.data.min()!), hi = max(0, t.data.max()!)
            #expect(q.scale == (hi - lo) / 255)
            for (x, y) in zip(t.data, back.data) {
                #expect(abs(x - y) <= q.scale * 0.5 + 1e-5)
            }
        }
    }

    @Test func int8FollowsTheAffineFormula() {
        let t = Tensor(shape: [3], data: [-1, 0, 1])
        let q = Int8Quantization(fitting: t.data)
        #expect(q.scale == Float(2) / 255)
        // round(-128 - (-1) / (2/255)) = round(-0.5) = -1 (ties away from zero)
        #expect(q.zeroPoint == -1)
        #expect(q.quantize(-1) == -128)
        #expect(q.quantize(0) == -1)
        // 1 / (2/255) is 127.4999 in float32, so 1 lands one level below the top.
        #expect(q.quantize(1) == 126)
        #expect(abs(q.dequantize(q.quantize(1)) - 1) <= q.scale / 2)
        #expect(q.dequantize(-1) == 0)
    }

    @Test func int8HandlesNegativeOnlyTensors() throws {
        let t = Tensor(shape: [4], data: [-8, -4, -2, -1])
        let e = FeatureCodecKind.int8.encode(t)
        let q = try! #require(e.quantization)
        // Range widened to include zero: [-8, 0].
        #expect(q.scale == Float(8) / 255)
        #expect(q.zeroPoint == 127)
        let back = (try e.decoded())
        #expect(back.data[0] == -8 || abs(back.data[0] + 8) <= q.scale / 2)
        for (x, y) in zip(t.data, back.data) { #expect(abs(x - y) <= q.scale / 2 + 1e-6) }
    }

    @Test func int8HandlesPositiveOnlyTensors() {
        let t = Tensor(shape: [4], data: [5, 5.5, 6, 5.25])
        let q = Int8Quantization(fitting: t.data)
        #expect(q.zeroPoint == -128)
        let back = FeatureCodecKind.int8.roundTrip(t)
        for (x, y) in zip(t.data, back.data) { #expect(abs(x - y) <= q.scale / 2 + 1e-6) }
    }

    @Test("constant tensors survive every codec", arguments: FeatureCodecKind.allCases.filter { $0 != .uint8 })
    func constantTensors(kind: FeatureCodecKind) throws {
        for c: Float in [0, 3, -2.5] {
            let t = Tensor(shape: [2, 8], repeating: c)
            let back = kind.roundTrip(t)
            #expect(bits(back) == bits((try kind.encode(t).decoded())))
            for y in back.data { #expect(abs(y - c) <= abs(c) * 0.01) }
            #expect(Set(back.data).count == 1)
        }
    }

    @Test func allZeroInt8UsesUnitScale() {
        let q = Int8Quantization(fitting: [Float](repeating: 0, count: 10))
        #expect(q.scale == 1)
        #expect(q.zeroPoint == -128)
        #expect(q.dequantize(q.quantize(0)) == 0)
    }

    @Test func int8IgnoresNonFiniteValuesWhenFitting() {
        let q = Int8Quantization(fitting: [1, .nan, -1, .infinity, -.infinity])
        #expect(q.scale == Float(2) / 255)
        #expect(q.quantize(.nan) == q.zeroPoint)
        #expect(q.quantize(.infinity) == 127)
        #expect(q.quantize(-.infinity) == -128)
    }

    @Test func encodingIsDeterministic() {
        let t = randomTensor([3, 7], in: -1...1, seed: 99)
        for kind in FeatureCodecKind.allCases {
            #expect(kind.encode(t) == kind.encode(t))
        }
    }

    @Test func emptyTensorRoundTrips() throws {
        let t = Tensor(shape: [0, 4], data: [])
        for kind in FeatureCodecKind.allCases {
            #expect(kind.roundTrip(t).count == 0)
            #expect((try kind.encode(t).decoded()).shape == [0, 4])
        }
    }
}
