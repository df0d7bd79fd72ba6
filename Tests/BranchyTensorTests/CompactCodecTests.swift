import BranchyTensor
import Testing

/// The codecs added for narrow links: 8-bit pixels, per-channel int8, 4-bit, 1-bit sign, and the
/// lossless compressors behind them.
@Suite struct CompactCodecTests {
    @Test func namesRoundTrip() {
        for kind in FeatureCodecKind.allCases { #expect(FeatureCodecKind(kind.name) == kind) }
        #expect(FeatureCodec("int4+zstd") == FeatureCodec(.int4, compression: .zstd))
        #expect(FeatureCodec("sign+lz4")?.name == "sign+lz4")
        #expect(FeatureCodec("int8") == FeatureCodec(.int8))
        #expect(FeatureCodec("int8+none") == nil)
        #expect(FeatureCodec("int8+gzip") == nil)
        #expect(FeatureCodec("int3") == nil)
        #expect(FeatureCodec("int8+zstd+lz4") == nil)
    }

    @Test func uint8IsLosslessForImagePixels() throws {
        let t = Tensor(shape: [1, 4, 64], data: (0..<256).map { Float($0) / 255 })
        let back = FeatureCodecKind.uint8.encode(t)
        #expect(back.bytes == (0..<256).map { UInt8($0) })
        #expect((try back.decoded()).data == t.data)
        #expect(FeatureCodecKind.uint8.roundTrip(t).data == t.data)
    }

    @Test func signIsLosslessForPlusMinusOne() throws {
        let t = randomTensor([8, 7, 7], seed: 3)
        let signs = Tensor(shape: t.shape, data: t.data.map { $0 >= 0 ? 1 : -1 })
        let e = FeatureCodecKind.sign.encode(signs)
        #expect(e.bytes.count == 49)
        #expect(e.parameters == .sign(scale: 1))
        #expect((try e.decoded()).data == signs.data)
    }

    @Test func signKeepsSignsAndMeanMagnitude() {
        let t = Tensor(shape: [3, 3], data: [2, -4, 0, 6, -2, 1, -1, 3, -8])
        let d = FeatureCodecKind.sign.roundTrip(t)
        #expect(d.data == [3, -3, 3, 3, -3, 3, -3, 3, -3])
        let e = FeatureCodecKind.sign.encode(t)
        #expect(e.bytes.count == 2)
        #expect(e.bytes[1] & 0xFE == 0)  // unused bits zero
    }

    @Test func int4StaysWithinHalfAStep() throws {
        let t = randomTensor([4, 5, 5], seed: 7, range: 6)
        let e = FeatureCodecKind.int4.encode(t)
        guard case .int4(let q) = e.parameters else { Issue.record("no int4 parameters"); return }
        #expect(e.bytes.count == 50)
        let d = (try e.decoded())
        for (a, b) in zip(t.data, d.data) { #expect(abs(a - b) <= q.scale / 2 * 1.0001) }
        #expect(FeatureCodecKind.int4.roundTrip(t).data == d.data)
        // An odd count leaves the last high nibble zero.
        let odd = FeatureCodecKind.int4.encode(Tensor(shape: [3], data: [1, 2, 3]))
        #expect(odd.bytes.count == 2 && odd.bytes[1] & 0xF0 == 0)
    }

    @Test func int8PerChannelFitsEachChannel() throws {
        // Channel 0 is tiny, channel 1 large: per channel keeps channel 0 precise.
        let data = (0..<16).map { Float($0) * 0.001 } + (0..<16).map { Float($0) * 100 }
        let t = Tensor(shape: [2, 4, 4], data: data)
        let e = FeatureCodecKind.int8PerChannel.encode(t)
        guard case .int8PerChannel(let qs) = e.parameters else { Issue.record("no parameters"); return }
        #expect(qs.count == 2)
        let d = (try e.decoded())
        for i in 0..<16 { #expect(abs(d.data[i] - data[i]) <= qs[0].scale) }
        let perTensor = FeatureCodecKind.int8.roundTrip(t)
        #expect(zip(perTensor.data.prefix(16), data.prefix(16)).map { abs($0 - $1) }.max()! > qs[0].scale)
    }

    @Test(arguments: [LosslessCompression.lz4, .zstd])
    func compressionRoundTripsAndOnlyWhereItHelps(method: LosslessCompression) throws {
        #expect(method.isAvailable, "\(method.libraryName) should be installed")
        // Mostly zeros after a ReLU: compresses.
        let sparse = Tensor(shape: [8, 7, 7], data: (0..<392).map { $0 % 7 == 0 ? Float($0) : 0 })
        let e = try FeatureCodec(.int8, compression: method).encode(sparse)
        #expect(e.compression == method)
        #expect(e.compressedBytes.count < 392)
        #expect(try method.decompress(e.compressedBytes, expected: 392) == e.bytes)
        // Random bits do not: sent as they are.
        let noise = randomTensor([64], seed: 9)
        let n = try FeatureCodec(.sign, compression: method).encode(noise)
        #expect(n.compression == .none)
        #expect(n.wireDataCount == 8)
    }

    @Test(arguments: [LosslessCompression.lz4, .zstd])
    func decompressionRefusesWrongSizesAndGarbage(method: LosslessCompression) throws {
        let packed = try method.compress([UInt8](repeating: 7, count: 1000))
        #expect(throws: CompressionError.self) { try method.decompress(packed, expected: 999) }
        #expect(throws: CompressionError.self) { try method.decompress(packed, expected: 1001) }
        #expect(throws: CompressionError.self) { try method.decompress([1, 2, 3, 4, 5], expected: 10) }
        #expect(throws: CompressionError.self) { try method.decompress([], expected: 10) }
        #expect(try method.decompress(packed, expected: 1000) == [UInt8](repeating: 7, count: 1000))
    }
}

/// `decoded()` checks that the parts of an encoded tensor fit together, with a thrown error.
@Suite struct EncodedTensorConsistencyTests {
    @Test func aByteCountThatDoesNotFitTheShapeIsAnError() {
        let e = EncodedTensor(kind: .float32, shape: [2, 3], parameters: .none, bytes: [UInt8](repeating: 0, count: 20))
        #expect(e.inconsistency?.contains("needs 24 bytes, has 20") == true)
        #expect(throws: EncodedTensor.Inconsistent.self) { try e.decoded() }
    }

    @Test func parametersOfAnotherKindAreAnError() {
        let e = EncodedTensor(kind: .int4, shape: [4], parameters: .sign(scale: 1), bytes: [0, 0])
        #expect(e.inconsistency != nil)
        #expect(throws: EncodedTensor.Inconsistent.self) { try e.decoded() }
        let channels = EncodedTensor(kind: .int8PerChannel, shape: [3, 2], parameters: .int8PerChannel([.init(scale: 1, zeroPoint: 0)]),
                                     bytes: [UInt8](repeating: 0, count: 6))
        #expect(channels.inconsistency?.contains("1 channel parameters") == true)
    }

    @Test func everyKindsOwnEncodingIsConsistent() throws {
        let t = Tensor(shape: [2, 4], data: (0..<8).map { Float($0) / 8 - 0.5 })
        for kind in FeatureCodecKind.allCases {
            let e = kind.encode(t)
            #expect(e.inconsistency == nil, "\(kind)")
            #expect(try e.decoded().shape == [2, 4])
        }
    }
}
