import BranchyTensor
import NIOCore
@testable import BranchyWire

/// A small deterministic generator (SplitMix64) so tests never depend on the system RNG.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Fixtures {
    static let fingerprint = ModelFingerprint(bytes: (0..<32).map { UInt8($0 &* 7 &+ 1) })!
    static let otherFingerprint = ModelFingerprint(bytes: [UInt8](repeating: 0xAB, count: 32))!

    static let deviceHello = Hello(role: .device, nodeName: "device-0", fingerprint: fingerprint)
    static let edgeHello = Hello(role: .edge, nodeName: "edge-α", fingerprint: fingerprint)

    static func tensor(_ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in Float.random(in: -4...4, using: &rng) })
    }

    static func infer(_ codec: FeatureCodecKind, shape: [Int] = [1, 4, 3, 3], seed: UInt64 = 1) -> InferRequest {
        InferRequest(sampleID: 0xDEAD_BEEF_0000 + seed, deadlineMillis: 250, stageIndex: 1,
                     tensor: tensor(shape, seed: seed), codec: codec)
    }

    static let result = InferResult(
        status: .degraded, reason: "cloud unreachable: connection refused", exitIndex: 1,
        exitName: "exit-edge", nodeName: "edge-α", predictedClass: 7, confidence: 0.875, entropy: 0.42,
        hops: [
            HopCost(link: "edge->cloud", requestFrameBytes: 1234, responseFrameBytes: 99,
                    requestTLSBytes: 1290, responseTLSBytes: 128),
            HopCost(link: "device->edge", requestFrameBytes: 4000, responseFrameBytes: 150,
                    requestTLSBytes: 4100, responseTLSBytes: 180),
        ])

    /// One frame of every message type (and every codec for infer).
    static let everyFrame: [Frame] = [
        Frame(requestID: 0, message: .hello(deviceHello)),
        Frame(requestID: 0, message: .helloAck(edgeHello)),
        Frame(requestID: 1, message: .infer(infer(.float32))),
        Frame(requestID: 2, message: .infer(infer(.float16, shape: [2, 5]))),
        Frame(requestID: 3, message: .infer(infer(.int8, shape: [7]))),
        Frame(requestID: .max, message: .result(result)),
        Frame(requestID: 4, message: .result(InferResult(exitIndex: 0, exitName: "", nodeName: "d",
                                                         predictedClass: 0, confidence: 1, entropy: 0))),
        Frame(requestID: 5, message: .error(ErrorFrame(code: .deadlineExceeded, message: "budget 250 ms spent"))),
        Frame(requestID: 0, message: .error(ErrorFrame(code: ErrorCode(rawValue: 999), message: ""))),
        Frame(requestID: 0, message: .goodbye),
    ]

    static func bytes(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { buffer.writeFrame(frame) }
        return buffer
    }

    static func bytes(_ frame: Frame) -> ByteBuffer { bytes([frame]) }

    /// A raw frame: header fields as given, payload verbatim.
    static func raw(magic: UInt32 = FrameHeader.magic, version: UInt8 = 1, type: UInt8, flags: UInt16 = 0,
                    requestID: UInt64 = 1, length: UInt32? = nil, payload: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(magic)
        b.writeInteger(version)
        b.writeInteger(type)
        b.writeInteger(flags)
        b.writeInteger(requestID)
        b.writeInteger(length ?? UInt32(payload.count))
        b.writeBytes(payload)
        return b
    }

    /// The payload bytes of a frame produced by `writeFrame`.
    static func payload(of frame: Frame) -> [UInt8] {
        var b = bytes(frame)
        b.moveReaderIndex(forwardBy: FrameHeader.size)
        return b.readBytes(length: b.readableBytes)!
    }
}
