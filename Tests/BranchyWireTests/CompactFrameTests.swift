import BranchyTensor
import NIOCore
import Testing

@testable import BranchyWire

/// Protocol version 2: compact headers and payloads, names by index, the new codecs, and the
/// decoder and encoder fixing the dialect from the hello.
@Suite struct CompactFrameTests {
    static let names = NameTable(["device", "edge", "cloud", "device-exit", "edge-exit", "cloud-exit", "device->edge", "edge->cloud"])
    static let v2 = FrameDialect.v2(names: names)

    static var frames: [Frame] {
        var list = Fixtures.everyFrame.filter {
            if case .hello = $0.message { return false }
            if case .helloAck = $0.message { return false }
            return true
        }
        for (i, kind) in FeatureCodecKind.allCases.enumerated() {
            for compression in LosslessCompression.allCases {
                let t = Tensor(shape: [3, 5, 5], data: (0..<75).map { $0 % 4 == 0 ? Float($0 % 9) / 9 : 0 })
                let e = try! kind.encode(t).compressed(with: compression)
                list.append(Frame(requestID: UInt64(100 + i), message: .infer(InferRequest(sampleID: UInt64(i) << 40, deadlineMillis: 1_000_000,
                                                                                         stageIndex: 1, features: e))))
            }
        }
        list.append(Frame(requestID: 300, message: .result(InferResult(
            exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud", predictedClass: 7, confidence: 0.875, entropy: 0.5,
            hops: [HopCost(link: "edge->cloud", requestFrameBytes: 70, responseFrameBytes: 15, requestTLSBytes: 92, responseTLSBytes: 37)]))))
        return list
    }

    @Test func everyFrameRoundTripsAndSizesMatch() throws {
        for frame in Self.frames {
            try frame.validate(dialect: Self.v2)
            var b = ByteBuffer()
            let written = b.writeFrame(frame, dialect: Self.v2)
            #expect(written == frame.encodedSize(in: Self.v2), "\(frame.message.type)")
            #expect(b.readableBytes == written)
            let back = try #require(try b.readFrame(limits: .default, dialect: Self.v2))
            #expect(b.readableBytes == 0)
            var expected = frame
            if case .result(var r) = frame.message {  // confidence and entropy travel as binary16
                r.confidence = FeatureCodecKind.float(float16Bits: FeatureCodecKind.float16Bits(r.confidence))
                r.entropy = FeatureCodecKind.float(float16Bits: FeatureCodecKind.float16Bits(r.entropy))
                expected.message = .result(r)
            }
            if case .infer(let sent) = frame.message, case .infer(let got) = back.message {
                #expect(got.features.bytes == sent.features.bytes)
                #expect(got.features.compression == sent.features.compression)
                #expect((try got.tensor()).data.map(\.bitPattern) == (try sent.tensor()).data.map(\.bitPattern))
                #expect(got.sampleID == sent.sampleID && got.deadlineMillis == sent.deadlineMillis)
            } else {
                #expect(back == expected)
            }
        }
    }

    @Test func theCommonResultIsAFewBytes() {
        let ok = Frame(requestID: 5, message: .result(InferResult(exitIndex: 1, exitName: "edge-exit", nodeName: "edge",
                                                                  predictedClass: 3, confidence: 0.9, entropy: 0.3)))
        // marker, id, length; flags, exit, exit name, node name, class, confidence, entropy, hop count.
        #expect(ok.encodedSize(in: Self.v2) == 3 + 10)
        #expect(ok.encodedSize(in: .v1) == 20 + 1 + 2 + 1 + 2 + 9 + 2 + 4 + 2 + 4 + 4 + 1)
        // A name the table lacks travels in full after the escape index.
        let other = Frame(requestID: 5, message: .result(InferResult(exitIndex: 1, exitName: "edge-exit", nodeName: "edge-7",
                                                                     predictedClass: 3, confidence: 0.9, entropy: 0.3)))
        #expect(other.encodedSize(in: Self.v2) == 3 + 10 + 1 + 6)
    }

    @Test func aOneBitRequestIsSmall() {
        let t = Tensor(shape: [8, 7, 7], data: (0..<392).map { $0 % 3 == 0 ? 1 : -1 })
        let f = Frame(requestID: 9, message: .infer(InferRequest(sampleID: 9_999, deadlineMillis: 9_000, stageIndex: 1, tensor: t, codec: .sign)))
        // header 3; sampleID 2, deadline 2, stage 1; codec 1, rank 1, dims 3, scale 4; 49 bytes of bits.
        #expect(f.encodedSize(in: Self.v2) == 3 + 5 + 9 + 49)
    }

    @Test func varintsAreShortestAndBounded() throws {
        for v: UInt64 in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, .max] {
            var b = ByteBuffer()
            #expect(b.writeVarint(v) == Varint.size(v))
            var r = PayloadReader(buffer: b, message: .result)
            #expect(try r.varint("x") == v)
        }
        func peek(_ bytes: [UInt8]) -> Varint.Peek { bytes.withUnsafeBytes { Varint.peek($0, at: 0) } }
        #expect(peek([0x80, 0x00]) == .malformed("a non-shortest encoding (trailing zero group)"))
        #expect(peek([0x80]) == .incomplete)
        #expect(peek([UInt8](repeating: 0xFF, count: 9) + [0x02]) == .malformed("a value above 2^64 - 1"))
        #expect(peek([UInt8](repeating: 0x80, count: 10) + [0x01]) == .malformed("more than 10 bytes"))
    }

    @Test func compactHeaderChecksEachPart() throws {
        var bad = ByteBuffer(bytes: [0x42, 0x52])
        #expect(throws: WireError.badCompactMarker(0x42)) { try bad.readFrame(limits: .default, dialect: Self.v2) }
        var unknown = ByteBuffer(bytes: [0xA9])
        #expect(throws: WireError.unknownMessageType(9)) { try unknown.readFrame(limits: .default, dialect: Self.v2) }
        var overlong = ByteBuffer(bytes: [0xA3, 0x81, 0x00, 0x01, 0x00])
        #expect(throws: WireError.badVarint(field: "requestID", "a non-shortest encoding (trailing zero group)")) {
            try overlong.readFrame(limits: .default, dialect: Self.v2)
        }
        // A 4 MiB + 1 length is refused from the header, before any payload arrives.
        var big = ByteBuffer(bytes: [0xA3, 0x01])
        big.writeVarint(UInt64(4 << 20) + 1)
        #expect(throws: WireError.payloadTooLarge(length: UInt32(4 << 20) + 1, limit: 4 << 20)) {
            try big.readFrame(limits: .default, dialect: Self.v2)
        }
        // Still incomplete: nothing consumed.
        var partial = ByteBuffer(bytes: [0xA3, 0x01, 0x85])
        #expect(try partial.readFrame(limits: .default, dialect: Self.v2) == nil)
        #expect(partial.readerIndex == 0)
    }

    @Test func versionOneConnectionsRefuseOtherHeaders() {
        var v2header = Fixtures.raw(version: 2, type: 6, payload: [])
        #expect(throws: WireError.versionMismatch(2, negotiated: 1)) { try v2header.readFrame(limits: .default, dialect: .v1) }
    }

    @Test func resultsRefuseUnknownIndicesAndFlags() throws {
        func payload(_ bytes: [UInt8]) -> ByteBuffer { Self.payload(.result, bytes) }
        // flags 0, exit 0, exit name 40 (no such index), ...
        var unknown = payload([0, 0, 40, 0, 3, 0x3C, 0x00, 0x34, 0x00, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "exitName", value: "index 40",
                                               expected: "an index below 8 (the helloAck's names) or 255")) {
            try unknown.readFrame(limits: .default, dialect: Self.v2)
        }
        var flags = payload([32, 0, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "flags", value: "32",
                                               expected: "only bits 0 (degraded), 1 (reason), 2 (passed entropies), 3 (probabilities) and 4 (timings)")) {
            try flags.readFrame(limits: .default, dialect: Self.v2)
        }
        // Bit 2: the passed exits' entropies, a count of at least one, then binary16 each.
        var nonePassed = payload([4, 0, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 0, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "passedEntropies.count", value: "0",
                                               expected: "1...255 when flag bit 2 is set")) {
            try nonePassed.readFrame(limits: .default, dialect: Self.v2)
        }
        var passedNaN = payload([4, 2, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 2, 0x3C, 0x00, 0x7E, 0x00, 0])
        #expect(throws: WireError.self) { try passedNaN.readFrame(limits: .default, dialect: Self.v2) }
        var passed = payload([4, 2, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 2, 0x3C, 0x00, 0x38, 0x00, 0])
        let passedFrame = try #require(try passed.readFrame(limits: .default, dialect: Self.v2))
        var expected = InferResult(exitIndex: 2, exitName: "device-exit", nodeName: "device", predictedClass: 3, confidence: 1, entropy: 0.25)
        expected.passedEntropies = [1, 0.5]
        #expect(passedFrame.message == .result(expected))
        var written = ByteBuffer()
        written.writeFrame(Frame(requestID: 1, message: .result(expected)), dialect: Self.v2)
        #expect(written == payload([4, 2, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 2, 0x3C, 0x00, 0x38, 0x00, 0]))
        // One encoding per result: an empty reason clears bit 1; a name of the table goes by its index.
        var emptyReason = payload([3, 0, 0, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 0])
        #expect(throws: WireError.self) { try emptyReason.readFrame(limits: .default, dialect: Self.v2) }
        var inlineKnown = payload([0, 0, 255, 11] + Array("device-exit".utf8) + [0, 3, 0x3C, 0x00, 0x34, 0x00, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "exitName", value: "a name given in full",
                                               expected: "index 3, the name's place in the table")) {
            try inlineKnown.readFrame(limits: .default, dialect: Self.v2)
        }
        var nan = payload([0, 0, 3, 0, 3, 0x7E, 0x00, 0x34, 0x00, 0])
        #expect(throws: WireError.self) { try nan.readFrame(limits: .default, dialect: Self.v2) }
        var good = payload([0, 0, 3, 0, 3, 0x3C, 0x00, 0x34, 0x00, 0])
        let frame = try #require(try good.readFrame(limits: .default, dialect: Self.v2))
        #expect(frame.message == .result(InferResult(exitIndex: 0, exitName: "device-exit", nodeName: "device",
                                                     predictedClass: 3, confidence: 1, entropy: 0.25)))
    }

    @Test func probabilitiesAreAskedForByBit7OfTheStageAndSentAfterThePassedEntropies() throws {
        // The request: sampleID 1, no deadline, stage 1 with bit 7 set, a float32 tensor of one element.
        var request = InferRequest(sampleID: 1, stageIndex: 1, tensor: Tensor(shape: [1], data: [2]), codec: .float32)
        request.wantsProbabilities = true
        var written = ByteBuffer()
        written.writeFrame(Frame(requestID: 1, message: .infer(request)), dialect: Self.v2)
        #expect(written == Self.payload(.infer, [1, 0, 0x81, 0x00, 1, 1, 0x00, 0x00, 0x00, 0x40]))
        let read = try #require(try written.readFrame(limits: .default, dialect: Self.v2))
        #expect(read.message == .infer(request))
        // Stage 128 cannot be sent on version 2: bit 7 is taken.
        var deep = request
        deep.stageIndex = 128
        #expect(throws: WireError.self) { try Frame(requestID: 1, message: .infer(deep)).validate(dialect: Self.v2) }

        // The result: flag bit 3, then a count and big-endian float32s, after the passed entropies.
        var result = InferResult(exitIndex: 2, exitName: "device-exit", nodeName: "device", predictedClass: 1, confidence: 0.75, entropy: 0.5)
        result.passedEntropies = [1]
        result.probabilities = [0.25, 0.75]
        let bytes: [UInt8] = [12, 2, 3, 0, 1, 0x3A, 0x00, 0x38, 0x00, 1, 0x3C, 0x00, 2, 0x3E, 0x80, 0, 0, 0x3F, 0x40, 0, 0, 0]
        var out = ByteBuffer()
        out.writeFrame(Frame(requestID: 1, message: .result(result)), dialect: Self.v2)
        #expect(out == Self.payload(.result, bytes))
        var back = Self.payload(.result, bytes)
        #expect(try back.readFrame(limits: .default, dialect: Self.v2)?.message == .result(result))
        // No probabilities is sent by leaving bit 3 clear; each must be a probability; the count must be there.
        var none = Self.payload(.result, [8, 2, 3, 0, 1, 0x3A, 0x00, 0x38, 0x00, 0, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "probabilities.count", value: "0",
                                               expected: "1...65536 when flag bit 3 is set")) {
            try none.readFrame(limits: .default, dialect: Self.v2)
        }
        var above = Self.payload(.result, [8, 2, 3, 0, 1, 0x3A, 0x00, 0x38, 0x00, 1, 0x3F, 0xC0, 0, 0, 0])
        #expect(throws: WireError.invalidValue(message: .result, field: "probabilities[0]", value: "1.5", expected: "a probability from 0 to 1")) {
            try above.readFrame(limits: .default, dialect: Self.v2)
        }
        var short = Self.payload(.result, [8, 2, 3, 0, 1, 0x3A, 0x00, 0x38, 0x00, 3, 0x3F, 0x40, 0, 0, 0])
        #expect(throws: WireError.self) { try short.readFrame(limits: .default, dialect: Self.v2) }
        var bad = result
        bad.probabilities = [.nan]
        #expect(throws: WireError.self) { try Frame(requestID: 1, message: .result(bad)).validate(dialect: Self.v2) }
    }

    @Test func thresholdsAndTimingsTravelInTheStageBytesOptions() throws {
        // Stage 1 with bit 6 (options) and bit 7; options 3: thresholds (exits 1 and 2) and timings; then the tensor.
        var request = InferRequest(sampleID: 1, stageIndex: 1, tensor: Tensor(shape: [1], data: [2]), codec: .float32)
        request.wantsProbabilities = true
        request.exitThresholds = [2: 0.5, 1: 2]
        request.wantsTimings = true
        let bytes: [UInt8] = [1, 0, 0xC1, 3, 2, 1, 0x40, 0, 0, 0, 2, 0x3F, 0, 0, 0, 0x00, 1, 1, 0x00, 0x00, 0x00, 0x40]
        var written = ByteBuffer()
        let size = written.writeFrame(Frame(requestID: 1, message: .infer(request)), dialect: Self.v2)
        #expect(written == Self.payload(.infer, bytes))
        #expect(size == Frame(requestID: 1, message: .infer(request)).encodedSize(in: Self.v2))
        #expect(try written.readFrame(limits: .default, dialect: Self.v2)?.message == .infer(request))
        // Timings alone: options 2, no thresholds.
        var timed = InferRequest(sampleID: 1, stageIndex: 1, tensor: Tensor(shape: [1], data: [2]), codec: .float32)
        timed.wantsTimings = true
        var t = ByteBuffer()
        t.writeFrame(Frame(requestID: 1, message: .infer(timed)), dialect: Self.v2)
        #expect(t == Self.payload(.infer, [1, 0, 0x41, 2, 0x00, 1, 1, 0x00, 0x00, 0x00, 0x40]))
        // Refused: an empty options block, unknown option bits, no thresholds after bit 0, exits out of
        // order, a negative or infinite threshold.
        for (body, field) in [([1, 0, 0x41, 0, 0x00, 1, 1, 0, 0, 0, 0x40], "options"),
                              ([1, 0, 0x41, 4, 0x00, 1, 1, 0, 0, 0, 0x40], "options"),
                              ([1, 0, 0x41, 1, 0, 0x00, 1, 1, 0, 0, 0, 0x40], "thresholds.count"),
                              ([1, 0, 0x41, 1, 2, 2, 0x40, 0, 0, 0, 1, 0x3F, 0, 0, 0, 0x00, 1, 1, 0, 0, 0, 0x40], "thresholds[1].exit"),
                              ([1, 0, 0x41, 1, 1, 1, 0xBF, 0x80, 0, 0, 0x00, 1, 1, 0, 0, 0, 0x40], "thresholds[0].threshold"),
                              ([1, 0, 0x41, 1, 1, 1, 0x7F, 0x80, 0, 0, 0x00, 1, 1, 0, 0, 0, 0x40], "thresholds[0].threshold")] as [([UInt8], String)] {
            var b = Self.payload(.infer, body)
            do {
                _ = try b.readFrame(limits: .default, dialect: Self.v2)
                Issue.record("accepted a bad \(field)")
            } catch let WireError.invalidValue(_, f, _, _) {
                #expect(f == field)
            }
        }
        // Stage 64 cannot be sent on version 2: bit 6 is taken; nor can a NaN threshold.
        var deep = request
        deep.stageIndex = 64
        #expect(throws: WireError.self) { try Frame(requestID: 1, message: .infer(deep)).validate(dialect: Self.v2) }
        var nan = request
        nan.exitThresholds = [1: .nan]
        #expect(throws: WireError.self) { try Frame(requestID: 1, message: .infer(nan)).validate(dialect: Self.v2) }

        // The result: flag bit 4, serviceMicros before the hop count, two times after each hop's bytes.
        var result = InferResult(exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud", predictedClass: 1, confidence: 0.75, entropy: 0.5,
                                 hops: [HopCost(link: "edge->cloud", requestFrameBytes: 70, responseFrameBytes: 15, requestTLSBytes: 92,
                                                responseTLSBytes: 37, roundTripMicros: 300, upstreamMicros: 120)])
        result.serviceMicros = 900
        let resultBytes: [UInt8] = [0x10, 2, 5, 2, 1, 0x3A, 0x00, 0x38, 0x00, 0x84, 0x07, 1, 7, 70, 15, 92, 37, 0xAC, 0x02, 120]
        var out = ByteBuffer()
        let resultSize = out.writeFrame(Frame(requestID: 1, message: .result(result)), dialect: Self.v2)
        #expect(out == Self.payload(.result, resultBytes))
        #expect(resultSize == Frame(requestID: 1, message: .result(result)).encodedSize(in: Self.v2))
        #expect(try out.readFrame(limits: .default, dialect: Self.v2)?.message == .result(result))
        // Timings that are all zero are sent by leaving bit 4 clear.
        var zero = Self.payload(.result, [0x10, 2, 5, 2, 1, 0x3A, 0x00, 0x38, 0x00, 0, 0])
        #expect(throws: WireError.self) { try zero.readFrame(limits: .default, dialect: Self.v2) }
        var huge = result
        huge.serviceMicros = HopCost.maxMicros + 1
        #expect(throws: WireError.self) { try Frame(requestID: 1, message: .result(huge)).validate(dialect: Self.v2) }
    }

    /// A version 2 frame of `type`, request id 1, with `bytes` as its payload.
    static func payload(_ type: MessageType, _ bytes: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeCompactFrameHeader(type: type, requestID: 1, payloadLength: bytes.count)
        b.writeBytes(bytes)
        return b
    }

    /// An infer payload of version 2 with the given tensor bytes after stage 1.
    static func infer(_ tensor: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        let body: [UInt8] = [1, 0, 1] + tensor  // sampleID 1, no deadline, stage 1
        b.writeCompactFrameHeader(type: .infer, requestID: 1, payloadLength: body.count)
        b.writeBytes(body)
        return b
    }

    @Test func tensorsRefuseBadParametersPaddingAndCompression() {
        func rejects(_ tensor: [UInt8], _ field: String) {
            var b = Self.infer(tensor)
            do {
                _ = try b.readFrame(limits: .default, dialect: Self.v2)
                Issue.record("accepted a bad \(field)")
            } catch let error as WireError {
                guard case .invalidValue(_, let f, _, _) = error else {
                    if case .truncatedPayload(_, let f, _, _) = error, f == field { return }
                    Issue.record("\(error)"); return
                }
                #expect(f == field)
                #expect(error.errorCode == .badTensor)
            } catch { Issue.record("\(error)") }
        }
        // sign, rank 1, 3 values, scale 1.0, bits with a padding bit set.
        rejects([6, 1, 3, 0x3F, 0x80, 0, 0, 0x0F], "tensor.data[0]")
        // int4, 3 values, zero point 16.
        rejects([5, 1, 3, 0x3F, 0x80, 0, 0, 16, 0x11, 0x01], "tensor.zeroPoint")
        // int4 with a set padding nibble.
        rejects([5, 1, 3, 0x3F, 0x80, 0, 0, 1, 0x11, 0x11], "tensor.data[1]")
        // int8, scale NaN.
        rejects([2, 1, 1, 0x7F, 0xC0, 0, 0, 0, 5], "tensor.scale")
        // float32 with one byte too many.
        rejects([0, 1, 1, 0, 0, 0, 0, 0], "tensor.data")
        // zstd (high nibble 2) garbage.
        rejects([0x22, 1, 4, 0x3F, 0x80, 0, 0, 0, 1, 2, 3, 4], "tensor.data")
        // compressor 3 does not exist.
        rejects([0x32, 1, 4, 0x3F, 0x80, 0, 0, 0, 1, 2, 3, 4], "tensor.codec")
        // zero dim.
        rejects([0, 1, 0], "tensor.dims[0]")
    }

    @Test func compressedDataMayNotInflatePastItsShape() throws {
        let bomb = try LosslessCompression.zstd.compress([UInt8](repeating: 0, count: 1 << 20))
        var b = Self.infer([0x23, 1, 8] + bomb)  // uint8+zstd, 8 values, 1 MiB of zeros inside
        #expect(throws: WireError.self) { try b.readFrame(limits: .default, dialect: Self.v2) }
    }

    @Test func decoderAndEncoderFollowTheHello() throws {
        // Client side: writes a v2 hello in a full header, then compact frames.
        let encoder = FrameEncoder()
        var out = ByteBuffer()
        var hello = Fixtures.deviceHello
        hello.protocolVersion = 2
        try encoder.encode(data: Frame(requestID: 0, message: .hello(hello)), out: &out)
        #expect(out.getInteger(at: 4, as: UInt8.self) == 2)
        #expect(encoder.dialect.isCompact)
        let infer = Frame(requestID: 1, message: .infer(Fixtures.infer(.int8)))
        try encoder.encode(data: infer, out: &out)
        // Server side: decodes the hello, then the compact infer.
        var decoder = FrameDecoder()
        let h = try #require(try decoder.decode(buffer: &out))
        #expect(h.message == .hello(hello))
        #expect(decoder.dialect.isCompact)
        #expect(try decoder.decode(buffer: &out) == infer)
        // A version 1 hello keeps full headers.
        let v1 = FrameEncoder()
        var o = ByteBuffer()
        try v1.encode(data: Frame(requestID: 0, message: .hello(Fixtures.deviceHello)), out: &o)
        try v1.encode(data: infer, out: &o)
        var d1 = FrameDecoder()
        _ = try d1.decode(buffer: &o)
        #expect(d1.dialect == .v1)
        #expect(try d1.decode(buffer: &o) == infer)
    }

    @Test func version1RefusesTheNewCodecs() {
        let f = Frame(requestID: 1, message: .infer(Fixtures.infer(.sign)))
        #expect(throws: WireError.self) { try f.validate(dialect: .v1) }
        #expect(throws: Never.self) { try f.validate(dialect: Self.v2) }
    }

    @Test func helloCarriesTheNamesInVersion2Only() throws {
        var ack = Fixtures.edgeHello
        ack.protocolVersion = 2
        ack.names = Self.names
        let f = Frame(requestID: 0, message: .helloAck(ack))
        var b = ByteBuffer()
        b.writeFrame(f, dialect: .open)
        #expect(b.readableBytes == f.encodedSize(in: .open))
        #expect(try b.readFrame(limits: .default, dialect: .open) == f)
        // The header's version and the payload's must agree.
        var mixed = Fixtures.raw(version: 1, type: 2, payload: Array(Fixtures.payload(of: f)))
        #expect(throws: WireError.self) { try mixed.readFrame(limits: .default, dialect: .open) }
    }
}

@Suite struct LinkTotalsFrameTests {
    @Test func statsRoundTripInVersion2Only() throws {
        let totals = [LinkTotals(link: "edge->cloud", connections: 2, handshakeBytes: 5_476, bytesSent: 1 << 33, bytesReceived: 99)]
        let f = Frame(requestID: 3, message: .stats(totals))
        let v2 = FrameDialect.v2(names: .empty)
        var b = ByteBuffer()
        #expect(b.writeFrame(f, dialect: v2) == f.encodedSize(in: v2))
        #expect(try b.readFrame(limits: .default, dialect: v2) == f)
        var q = ByteBuffer()
        q.writeFrame(Frame(requestID: 4, message: .statsRequest), dialect: v2)
        #expect(q.readableBytes == 3)
        #expect(throws: WireError.self) { try f.validate(dialect: .v1) }
        // A 20-byte header with type 7 or 8 names no message.
        var full = Fixtures.raw(version: 1, type: 7, payload: [])
        #expect(throws: WireError.unknownMessageType(7)) { try full.readFrame() }
    }
}
