import BranchyTensor
import NIOCore
import Testing
@testable import BranchyWire

/// Numbers a peer sends are range-checked where they are decoded: byte counts of hops and link
/// totals, and the shape of compressed features, before anything is inflated.
@Suite struct UntrustedNumberTests {
    static let v2 = FrameDialect.after(version: 2, names: .empty)

    static func result(hopBytes: UInt64) -> Frame {
        Frame(requestID: 5, message: .result(InferResult(
            exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud", predictedClass: 3, confidence: 0.9, entropy: 0.1,
            hops: [HopCost(link: "edge->cloud", requestFrameBytes: 100, responseFrameBytes: hopBytes,
                           requestTLSBytes: 122, responseTLSBytes: 80)])))
    }

    /// Writes `frame` without validation and reads it back in `dialect`.
    static func roundTrip(_ frame: Frame, dialect: FrameDialect, limits: WireLimits = .default) throws -> Frame? {
        var buffer = ByteBuffer()
        buffer.writeFrame(frame, dialect: dialect)
        return try buffer.readFrame(limits: limits, dialect: dialect)
    }

    static func expectInvalid(_ body: () throws -> Frame?, field: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let frame = try body()
            Issue.record("accepted \(String(describing: frame))", sourceLocation: sourceLocation)
        } catch let error as WireError {
            guard case .invalidValue(_, let f, _, _) = error else {
                Issue.record("\(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(f.contains(field), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [FrameDialect.open, v2])
    func hopByteCountsUpToTheLimitAreAccepted(dialect: FrameDialect) throws {
        let frame = try #require(try Self.roundTrip(Self.result(hopBytes: WireLimits.maxHopBytes), dialect: dialect))
        guard case .result(let r) = frame.message else { Issue.record("not a result: \(frame)"); return }
        #expect(r.hops[0].responseFrameBytes == WireLimits.maxHopBytes)
    }

    @Test(arguments: [FrameDialect.open, v2], [WireLimits.maxHopBytes + 1, 1 << 63, UInt64.max])
    func hopByteCountsBeyondTheLimitAreRefused(dialect: FrameDialect, bytes: UInt64) {
        Self.expectInvalid({ try Self.roundTrip(Self.result(hopBytes: bytes), dialect: dialect) }, field: "hops[0].responseFrameBytes")
    }

    @Test(arguments: [WireLimits.maxLinkTotal + 1, UInt64.max])
    func linkTotalsBeyondTheLimitAreRefused(bytes: UInt64) {
        let totals = LinkTotals(link: "edge->cloud", connections: 1, handshakeBytes: bytes, bytesSent: 10, bytesReceived: 10)
        Self.expectInvalid({ try Self.roundTrip(Frame(requestID: 3, message: .stats([totals])), dialect: Self.v2) },
                           field: "links[0].handshakeBytes")
    }

    @Test func linkTotalsAtTheLimitAddUpWithoutOverflow() throws {
        let totals = LinkTotals(link: "edge->cloud", connections: WireLimits.maxLinkTotal, handshakeBytes: WireLimits.maxLinkTotal,
                                bytesSent: WireLimits.maxLinkTotal, bytesReceived: WireLimits.maxLinkTotal)
        let many = [LinkTotals](repeating: totals, count: LinkTotals.maxEntries)
        let frame = try #require(try Self.roundTrip(Frame(requestID: 3, message: .stats(many)), dialect: Self.v2))
        guard case .stats(let back) = frame.message else { Issue.record("not stats: \(frame)"); return }
        let (_, overflow) = back.map(\.handshakeBytes).reduce((UInt64(0), false)) { acc, v in
            let (sum, o) = acc.0.addingReportingOverflow(v)
            return (sum, acc.1 || o)
        }
        #expect(!overflow)
    }

    /// A compressed tensor that states another shape than the node's input is refused from its
    /// header: the compressed bytes here are not even a valid stream, so reaching the decompressor
    /// would give another error.
    @Test func compressedFeaturesOfAnotherShapeAreRefusedBeforeDecompression() throws {
        let features = EncodedTensor(kind: .float32, shape: [1024, 1024], parameters: .none, bytes: [],
                                     compression: .zstd, compressedBytes: [0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3])
        let frame = Frame(requestID: 9, message: .infer(InferRequest(sampleID: 1, stageIndex: 1, features: features)))
        let limits = WireLimits(compressedShape: [2, 14, 14])
        Self.expectInvalid({ try Self.roundTrip(frame, dialect: Self.v2, limits: limits) }, field: "tensor.dims")
    }

    @Test func compressedFeaturesOfTheExpectedShapeAreDecompressed() throws {
        guard LosslessCompression.zstd.isAvailable else { return }
        let plain = FeatureCodecKind.int8.encode(Tensor(shape: [2, 14, 14], data: [Float](repeating: 0.25, count: 392)))
        let features = try plain.compressed(with: .zstd)
        #expect(features.compression == .zstd)
        let frame = Frame(requestID: 9, message: .infer(InferRequest(sampleID: 1, stageIndex: 1, features: features)))
        let back = try #require(try Self.roundTrip(frame, dialect: Self.v2, limits: WireLimits(compressedShape: [2, 14, 14])))
        guard case .infer(let request) = back.message else { Issue.record("not infer: \(back)"); return }
        #expect(request.features.bytes == plain.bytes)
    }
}

/// One encoding per frame before the hello too: only `hello` and `helloAck` carry their own version
/// in a 20-byte header; any other frame before the hello is version 1 (found by fuzzing in release).
@Suite struct VersionBeforeHelloTests {
    static func header(version: UInt8, type: UInt8) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(FrameHeader.magic)
        b.writeInteger(version)
        b.writeInteger(type)
        b.writeInteger(UInt16(0))
        b.writeInteger(UInt64(0))
        b.writeInteger(UInt32(0))
        return b
    }

    @Test(arguments: [UInt8(5), 6])
    func aVersion2HeaderBeforeTheHelloIsOnlyForHellos(type: UInt8) {
        var buffer = Self.header(version: 2, type: type)
        #expect(throws: WireError.self) { try buffer.readFrame(limits: .default, dialect: .open) }
        var v1 = Self.header(version: 1, type: 6)
        #expect((try? v1.readFrame(limits: .default, dialect: .open))??.message == .goodbye)
    }
}
