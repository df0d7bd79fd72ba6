import BranchyTensor
import NIOCore
import Testing
@testable import BranchyWire

@Suite("Frame round trips through ByteBuffer")
struct FrameRoundTripTests {
    @Test("every frame type survives write then read", arguments: Fixtures.everyFrame)
    func roundTrip(frame: Frame) throws {
        var buffer = ByteBuffer()
        let written = buffer.writeFrame(frame)
        #expect(written == buffer.readableBytes)
        #expect(written == frame.encodedSize)
        #expect(frame.payloadSize + FrameHeader.size == frame.encodedSize)
        let decoded = try buffer.readFrame()
        #expect(decoded == frame)
        #expect(buffer.readableBytes == 0)
        try frame.validate()
    }

    @Test func headerLayoutIsBigEndianAndTwentyBytes() throws {
        let frame = Frame(requestID: 0x0102_0304_0506_0708, message: .goodbye)
        var buffer = Fixtures.bytes(frame)
        #expect(buffer.readBytes(length: 20) == [
            0x42, 0x52, 0x4E, 0x59,  // "BRNY"
            0x01,  // version
            0x06,  // goodbye
            0x00, 0x00,  // flags
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // request id
            0x00, 0x00, 0x00, 0x00,  // payload length
        ])
    }

    @Test func helloPayloadLayout() {
        let hello = Hello(role: .edge, nodeName: "ab", fingerprint: .zero)
        let payload = Fixtures.payload(of: Frame(requestID: 0, message: .hello(hello)))
        #expect(Array(payload.prefix(7)) == [0x00, 0x01, 0x02, 0x00, 0x02, 0x61, 0x62])
        #expect(payload.count == 7 + 32)
    }

    @Test func int8InferPayloadLayout() {
        let features = EncodedTensor(kind: .int8, shape: [2], quantization: Int8Quantization(scale: 1, zeroPoint: -3),
                                     bytes: [0x05, 0xFF])
        let request = InferRequest(sampleID: 9, deadlineMillis: 10, stageIndex: 2, features: features)
        let payload = Fixtures.payload(of: Frame(requestID: 1, message: .infer(request)))
        #expect(payload == [
            0, 0, 0, 0, 0, 0, 0, 9,  // sampleID
            0, 0, 0, 10,  // deadline
            2,  // stage
            2,  // codec int8
            1,  // rank
            0, 0, 0, 2,  // dim
            0x3F, 0x80, 0x00, 0x00,  // scale 1.0
            0xFD,  // zero point -3
            0, 0, 0, 2,  // byte count
            0x05, 0xFF,
        ])
    }

    @Test("decoded features equal the sender's roundTrip bit for bit", arguments: FeatureCodecKind.allCases)
    func decodedFeaturesMatchRoundTrip(codec: FeatureCodecKind) throws {
        let original = Fixtures.tensor([2, 3, 4], seed: 42)
        // The kinds after int8 exist in version 2 only.
        let dialect: FrameDialect = FeatureCodecKind.version1Kinds.contains(codec) ? .v1 : .v2(names: .empty)
        let frame0 = Frame(requestID: 7, message: .infer(InferRequest(sampleID: 1, stageIndex: 0, tensor: original, codec: codec)))
        try frame0.validate(dialect: dialect)
        var buffer = ByteBuffer()
        #expect(buffer.writeFrame(frame0, dialect: dialect) == frame0.encodedSize(in: dialect))
        let frame = try #require(try buffer.readFrame(limits: .default, dialect: dialect))
        guard case .infer(let request) = frame.message else {
            Issue.record("expected infer, got \(frame.message.type)")
            return
        }
        #expect((try request.tensor()).shape == original.shape)
        #expect((try request.tensor()).data.map(\.bitPattern) == codec.roundTrip(original).data.map(\.bitPattern))
    }

    @Test func manyFramesInOneBufferReadInOrder() throws {
        var buffer = Fixtures.bytes(Fixtures.everyFrame + Fixtures.everyFrame)
        var decoded: [Frame] = []
        while let frame = try buffer.readFrame() { decoded.append(frame) }
        #expect(decoded == Fixtures.everyFrame + Fixtures.everyFrame)
    }

    @Test("every strict prefix of a frame yields nil and consumes nothing", arguments: Fixtures.everyFrame)
    func prefixesNeedMoreData(frame: Frame) throws {
        let whole = Fixtures.bytes(frame)
        for length in 0..<whole.readableBytes {
            var prefix = whole.getSlice(at: whole.readerIndex, length: length)!
            #expect(try prefix.readFrame() == nil)
            #expect(prefix.readableBytes == length)
        }
    }

    @Test func unicodeNamesSurvive() throws {
        let hello = Hello(role: .cloud, nodeName: "云-☁️-ü", fingerprint: Fixtures.fingerprint)
        var buffer = Fixtures.bytes(Frame(requestID: 0, message: .helloAck(hello)))
        #expect(try buffer.readFrame() == Frame(requestID: 0, message: .helloAck(hello)))
    }

    @Test func fingerprintHexRoundTrips() {
        let hex = Fixtures.fingerprint.hex
        #expect(hex.count == 64)
        #expect(ModelFingerprint(hex: hex) == Fixtures.fingerprint)
        #expect(ModelFingerprint(hex: hex.uppercased()) == Fixtures.fingerprint)
        #expect(ModelFingerprint(hex: "zz" + hex.dropFirst(2)) == nil)
        #expect(ModelFingerprint(hex: String(hex.dropFirst())) == nil)
        #expect(ModelFingerprint(bytes: [1, 2, 3]) == nil)
    }

    @Test func errorCodesHaveStableValuesAndNames() {
        #expect(ErrorCode.allKnown.map(\.rawValue) == Array(1...17))
        #expect(Set(ErrorCode.allKnown.map(\.name)).count == ErrorCode.allKnown.count)
        #expect(ErrorCode.badFrame.name == "badFrame")
        #expect(ErrorCode(rawValue: 4242).name == "code4242")
    }

    @Test func longErrorMessagesAreShortenedOnCharacterBoundaries() {
        let e = ErrorFrame(code: .internalError, message: String(repeating: "é", count: 2000))
        #expect(e.message.utf8.count <= ErrorFrame.preferredMaxMessageBytes)
        #expect(e.message.allSatisfy { $0 == "é" })
    }

    @Test func encodedSizeIsExactForLargeTensors() {
        let frame = Frame(requestID: 1, message: .infer(Fixtures.infer(.float16, shape: [1, 32, 16, 16])))
        var buffer = ByteBuffer()
        #expect(buffer.writeFrame(frame) == frame.encodedSize)
        #expect(frame.encodedSize == 20 + 13 + 2 + 16 + 4 + 32 * 16 * 16 * 2)
    }

    @Test func readFrameMaxPayloadOverload() throws {
        let frame = Fixtures.everyFrame[5]
        var small = Fixtures.bytes(frame)
        #expect(throws: WireError.payloadTooLarge(length: UInt32(frame.payloadSize), limit: 10)) {
            try small.readFrame(maxPayload: 10)
        }
        var big = Fixtures.bytes(frame)
        #expect(try big.readFrame(maxPayload: frame.payloadSize) == frame)
    }
}
