import BranchyTensor
import NIOCore
import Testing
@testable import BranchyWire

/// Builds an `infer` payload field by field, so each field can be made wrong.
private struct InferPayload {
    var codec: UInt8 = 0
    var dims: [UInt32] = [2, 2]
    var rank: UInt8? = nil
    var scale: Float = 0.5
    var zeroPoint: Int8 = 0
    var byteCount: UInt32? = nil
    var data: [UInt8]? = nil

    var bytes: [UInt8] {
        var b = ByteBuffer()
        b.writeInteger(UInt64(77))  // sampleID
        b.writeInteger(UInt32(0))  // deadline
        b.writeInteger(UInt8(0))  // stage
        b.writeInteger(codec)
        b.writeInteger(rank ?? UInt8(dims.count))
        for d in dims { b.writeInteger(d) }
        if codec == 2 {
            b.writeInteger(scale.bitPattern)
            b.writeInteger(zeroPoint)
        }
        let perElement = codec == 0 ? 4 : codec == 1 ? 2 : 1
        let payload = data ?? [UInt8](repeating: 0, count: dims.reduce(1) { $0 * Int($1) } * perElement)
        b.writeInteger(byteCount ?? UInt32(payload.count))
        b.writeBytes(payload)
        return b.readBytes(length: b.readableBytes)!
    }

    func frame() -> ByteBuffer { Fixtures.raw(type: 3, payload: bytes) }
}

private func le(_ floats: [Float]) -> [UInt8] {
    floats.flatMap { f -> [UInt8] in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }
}

private func le16(_ halves: [UInt16]) -> [UInt8] {
    halves.flatMap { h -> [UInt8] in withUnsafeBytes(of: h.littleEndian, Array.init) }
}

/// Reads `buffer` expecting `error`, and checks the reader index did not move.
private func expectRejected(_ buffer: ByteBuffer, _ error: WireError, limits: WireLimits = .default,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    var b = buffer
    let before = b.readerIndex
    #expect(throws: error, sourceLocation: sourceLocation) { try b.readFrame(limits: limits) }
    #expect(b.readerIndex == before, sourceLocation: sourceLocation)
}

private func invalidInfer(_ field: String, _ value: String, _ expected: String) -> WireError {
    .invalidValue(message: .infer, field: field, value: value, expected: expected)
}

@Suite("Hostile frames are rejected with context")
struct HostileFrameTests {
    // MARK: header

    @Test func wrongMagicIsRejectedAfterFourBytes() {
        var b = ByteBuffer(bytes: [0x47, 0x45, 0x54, 0x20])  // "GET "
        #expect(throws: WireError.badMagic(0x4745_5420)) { try b.readFrame() }
        #expect("\(WireError.badMagic(0x4745_5420))".contains("0x47455420"))
    }

    @Test func shortWrongPrefixWaitsForMoreBytes() throws {
        var b = ByteBuffer(bytes: [0x42, 0x52, 0x4E])
        #expect(try b.readFrame() == nil)
    }

    @Test func unknownVersionIsRejected() {
        expectRejected(Fixtures.raw(version: 3, type: 6, payload: []), .unsupportedVersion(3, supported: 2))
        var five = ByteBuffer(bytes: [0x42, 0x52, 0x4E, 0x59, 0x00])
        #expect(throws: WireError.unsupportedVersion(0, supported: 2)) { try five.readFrame() }
        #expect(WireError.unsupportedVersion(3, supported: 2).errorCode == .unsupportedVersion)
    }

    @Test("unknown message types are rejected", arguments: [UInt8(0), 7, 255])
    func unknownType(type: UInt8) {
        expectRejected(Fixtures.raw(type: type, payload: []), .unknownMessageType(type))
    }

    @Test func reservedFlagsMustBeZero() {
        expectRejected(Fixtures.raw(type: 6, flags: 0x8000, payload: []), .reservedFlagsSet(0x8000))
    }

    @Test("oversized length throws from the header alone",
          arguments: [UInt32(4 << 20) + 1, UInt32.max])
    func oversizedLength(length: UInt32) {
        // Only the 20 header bytes exist: the reader must not wait for (or allocate) the payload.
        let header = Fixtures.raw(type: 3, length: length, payload: [])
        #expect(header.readableBytes == FrameHeader.size)
        expectRejected(header, .payloadTooLarge(length: length, limit: 4 << 20))
    }

    @Test func configuredLimitIsHonoured() {
        let limits = WireLimits(maxPayloadBytes: 16)
        expectRejected(Fixtures.raw(type: 5, length: 17, payload: []), .payloadTooLarge(length: 17, limit: 16),
                       limits: limits)
        var ok = Fixtures.raw(type: 5, payload: [0, 1, 0, 0])
        #expect(throws: Never.self) { try ok.readFrame(limits: limits) }
    }

    // MARK: lying lengths

    @Test func trailingGarbageInsidePayload() {
        expectRejected(Fixtures.raw(type: 6, payload: [0]), .trailingPayloadBytes(message: .goodbye, count: 1))
        let hello = Fixtures.payload(of: Frame(requestID: 0, message: .hello(Fixtures.deviceHello)))
        expectRejected(Fixtures.raw(type: 1, payload: hello + [1, 2, 3]), .trailingPayloadBytes(message: .hello, count: 3))
        let infer = Fixtures.payload(of: Frame(requestID: 1, message: .infer(Fixtures.infer(.int8))))
        expectRejected(Fixtures.raw(type: 3, payload: infer + [0]), .trailingPayloadBytes(message: .infer, count: 1))
    }

    @Test func payloadShorterThanItsFields() {
        let hello = Fixtures.payload(of: Frame(requestID: 0, message: .hello(Fixtures.deviceHello)))
        // Cut inside the fingerprint: the length field (honestly) covers fewer bytes than the fields need.
        expectRejected(Fixtures.raw(type: 1, payload: Array(hello.dropLast(5))),
                       .truncatedPayload(message: .hello, field: "fingerprint", needed: 32, remaining: 27))
        expectRejected(Fixtures.raw(type: 5, payload: [0]),
                       .truncatedPayload(message: .error, field: "code", needed: 2, remaining: 1))
        expectRejected(Fixtures.raw(type: 5, payload: [0, 1, 0, 9, 0x41]),
                       .truncatedPayload(message: .error, field: "message", needed: 9, remaining: 1))
    }

    @Test func hopCountLargerThanTheHopsPresent() {
        var payload = Fixtures.payload(of: Frame(requestID: 1, message: .result(Fixtures.result)))
        // The hop count byte sits right before the first hop; claim three hops instead of two.
        let hopBytes = Fixtures.result.hops.reduce(0) { $0 + 2 + $1.link.utf8.count + 32 }
        let countIndex = payload.count - hopBytes - 1
        #expect(payload[countIndex] == 2)
        payload[countIndex] = 3
        expectRejected(Fixtures.raw(type: 4, payload: payload),
                       .truncatedPayload(message: .result, field: "hops[2].link.length", needed: 2, remaining: 0))
    }

    // MARK: tensors

    @Test("rank outside 1...6 is rejected", arguments: [0, 7, 255])
    func badRank(rank: Int) {
        var p = InferPayload()
        p.dims = Array(repeating: 1, count: rank)
        expectRejected(p.frame(), invalidInfer("tensor.rank", "\(rank)", "1...6"))
    }

    @Test func zeroDimensionIsRejected() {
        var p = InferPayload()
        p.dims = [3, 0, 2]
        expectRejected(p.frame(), invalidInfer("tensor.dims[1]", "0", "1...4294967295"))
        #expect(WireError.invalidValue(message: .infer, field: "tensor.dims[1]", value: "0", expected: "").errorCode == .badTensor)
    }

    @Test func elementCountOverTheLimitIsRejectedBeforeTheData() {
        var p = InferPayload()
        p.dims = [4096, 4096]  // 2^24 elements, no data follows
        p.byteCount = 0
        p.data = []
        expectRejected(p.frame(), invalidInfer("tensor.elements", "16777216", "at most 4194304"))
        p.dims = [UInt32.max, UInt32.max, UInt32.max]
        expectRejected(p.frame(), invalidInfer("tensor.elements", "4294967295", "at most 4194304"))
    }

    @Test func unknownCodecIsRejected() {
        var p = InferPayload()
        p.codec = 3
        expectRejected(p.frame(), invalidInfer("tensor.codec", "3", "0 (float32), 1 (float16) or 2 (int8)"))
    }

    @Test func byteCountMustMatchShape() {
        var p = InferPayload()
        p.byteCount = 15
        p.data = [UInt8](repeating: 0, count: 15)
        expectRejected(p.frame(), invalidInfer("tensor.byteCount", "15", "16 (4 elements as float32)"))
        var q = InferPayload()
        q.codec = 1
        q.byteCount = 16
        q.data = [UInt8](repeating: 0, count: 16)
        expectRejected(q.frame(), invalidInfer("tensor.byteCount", "16", "8 (4 elements as float16)"))
    }

    @Test func byteCountLargerThanPayload() {
        var p = InferPayload()
        p.dims = [4]
        p.data = [0, 0, 0, 0]  // byteCount says 4 but the shape needs 16
        p.byteCount = 16
        expectRejected(p.frame(), .truncatedPayload(message: .infer, field: "tensor.data", needed: 16, remaining: 4))
    }

    @Test("NaN, infinity and magnitudes above 2^20 are rejected in float32 data",
          arguments: [Float.nan, .infinity, -.infinity, 3e38, -3e38, 1_048_577])
    func nonFiniteFloat32(bad: Float) {
        var p = InferPayload()
        p.data = le([1, 2, bad, 4])
        expectRejected(p.frame(), invalidInfer("tensor.data[2]", "\(bad)", "a finite float32 of magnitude at most 2^20"))
    }

    @Test func float32AtTheMagnitudeBoundIsAccepted() throws {
        var p = InferPayload()
        p.data = le([1_048_576, -1_048_576, 0, 4])
        var b = p.frame()
        #expect(try b.readFrame() != nil)
    }

    @Test("NaN and infinity are rejected in float16 data", arguments: [UInt16(0x7E00), 0x7C00, 0xFC00])
    func nonFiniteFloat16(bits: UInt16) {
        var p = InferPayload()
        p.codec = 1
        p.data = le16([0x3C00, bits, 0, 0])
        let value = Float(Float16(bitPattern: bits))
        expectRejected(p.frame(), invalidInfer("tensor.data[1]", "\(value)", "a finite float16 of magnitude at most 2^20"))
    }

    @Test("int8 scale must be positive and at most 2^20 / 255",
          arguments: [Float(0), -1, .nan, .infinity, -0.0, 3.4e38, 4113])
    func badScale(scale: Float) {
        var p = InferPayload()
        p.codec = 2
        p.scale = scale
        expectRejected(p.frame(), invalidInfer("tensor.scale", "\(scale)", "a positive number of at most \(Float(1_048_576) / 255) (2^20 / 255)"))
    }

    @Test func validTensorPayloadIsAccepted() throws {
        var p = InferPayload()
        p.codec = 2
        p.data = [1, 2, 3, 0xFF]
        var b = p.frame()
        let frame = try #require(try b.readFrame())
        guard case .infer(let r) = frame.message else { Issue.record("not infer"); return }
        #expect((try r.tensor()).data == [0.5, 1, 1.5, -0.5])
    }

    // MARK: other fields

    @Test func unknownRoleAndStatusAreRejected() {
        var hello = Fixtures.payload(of: Frame(requestID: 0, message: .hello(Fixtures.deviceHello)))
        hello[2] = 4
        expectRejected(Fixtures.raw(type: 1, payload: hello),
                       .invalidValue(message: .hello, field: "role", value: "4", expected: "1 (device), 2 (edge) or 3 (cloud)"))
        var result = Fixtures.payload(of: Frame(requestID: 1, message: .result(Fixtures.result)))
        result[0] = 2
        expectRejected(Fixtures.raw(type: 4, payload: result),
                       .invalidValue(message: .result, field: "status", value: "2", expected: "0 (ok) or 1 (degraded)"))
    }

    @Test func nodeNameOver255BytesIsRejected() {
        let long = Hello(role: .device, nodeName: String(repeating: "n", count: 256), fingerprint: .zero)
        let payload = Fixtures.payload(of: Frame(requestID: 0, message: .hello(long)))
        expectRejected(Fixtures.raw(type: 1, payload: payload),
                       .invalidValue(message: .hello, field: "nodeName.length", value: "256", expected: "at most 255 bytes"))
    }

    @Test func invalidUTF8IsRejected() {
        var b = ByteBuffer()
        b.writeInteger(UInt16(1))
        b.writeInteger(UInt8(1))
        b.writeInteger(UInt16(2))
        b.writeBytes([0xC3, 0x28])  // broken two-byte sequence
        b.writeBytes([UInt8](repeating: 0, count: 32))
        expectRejected(Fixtures.raw(type: 1, payload: b.readBytes(length: b.readableBytes)!),
                       .invalidValue(message: .hello, field: "nodeName", value: "2 bytes", expected: "valid UTF-8"))
    }

    @Test func nonFiniteConfidenceIsRejected() {
        var r = Fixtures.result
        r.confidence = .nan
        let payload = Fixtures.payload(of: Frame(requestID: 1, message: .result(r)))
        expectRejected(Fixtures.raw(type: 4, payload: payload),
                       .invalidValue(message: .result, field: "confidence", value: "nan", expected: "a finite number"))
    }

    // MARK: the sending side refuses what the receiving side would reject

    @Test func encoderValidatesBeforeWriting() {
        let encoder = FrameEncoder()
        var out = ByteBuffer()
        var nan = EncodedTensor(kind: .float32, shape: [1], bytes: le([.nan]))
        #expect(throws: invalidInfer("tensor.data[0]", "nan", "a finite float32 of magnitude at most 2^20")) {
            try encoder.encode(data: Frame(requestID: 1, message: .infer(InferRequest(sampleID: 1, stageIndex: 0, features: nan))), out: &out)
        }
        nan.kind = .int8
        nan.bytes = [0]
        #expect(throws: invalidInfer("tensor.quantization", "none", "the parameters of int8")) {
            try encoder.encode(data: Frame(requestID: 1, message: .infer(InferRequest(sampleID: 1, stageIndex: 0, features: nan))), out: &out)
        }
        let rank7 = EncodedTensor(kind: .int8, shape: [1, 1, 1, 1, 1, 1, 1], quantization: .init(scale: 1, zeroPoint: 0), bytes: [0])
        #expect(throws: invalidInfer("tensor.rank", "7", "1...6")) {
            try encoder.encode(data: Frame(requestID: 1, message: .infer(InferRequest(sampleID: 1, stageIndex: 0, features: rank7))), out: &out)
        }
        let longName = Hello(role: .edge, nodeName: String(repeating: "x", count: 300), fingerprint: .zero)
        #expect(throws: WireError.invalidValue(message: .helloAck, field: "nodeName.length", value: "300", expected: "at most 255 bytes")) {
            try encoder.encode(data: Frame(requestID: 0, message: .helloAck(longName)), out: &out)
        }
        #expect(out.readableBytes == 0)
        let small = FrameEncoder(limits: WireLimits(maxPayloadBytes: 8))
        #expect(throws: WireError.payloadTooLarge(length: 39, limit: 8)) {
            try small.encode(data: Frame(requestID: 0, message: .hello(Hello(role: .edge, nodeName: "ab", fingerprint: .zero))), out: &out)
        }
    }

    @Test func errorDescriptionsNameFieldAndValues() {
        let e = invalidInfer("tensor.dims[1]", "0", "1...4294967295")
        #expect(e.description == "infer field 'tensor.dims[1]' has invalid value 0, expected 1...4294967295")
        #expect(WireError.payloadTooLarge(length: 5_000_000, limit: 4_194_304).description.contains("5000000"))
        #expect(WireError.truncatedPayload(message: .hello, field: "fingerprint", needed: 32, remaining: 3)
            .description.contains("fingerprint"))
        #expect(WireError.badMagic(1).errorCode == .badFrame)
    }
}
