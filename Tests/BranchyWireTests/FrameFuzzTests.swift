import BranchyTensor
import NIOCore
import NIOEmbedded
import Testing
@testable import BranchyWire

/// Random valid frames, built from a seeded generator.
private struct FrameGenerator {
    var rng: SplitMix64

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func u64() -> UInt64 { rng.next() }
    /// A byte count a hop may report: at most the protocol's bound.
    mutating func hopBytes() -> UInt64 { rng.next() % (WireLimits.maxHopBytes + 1) }

    mutating func string(maxBytes: Int) -> String {
        let alphabet: [Character] = ["a", "z", "0", "-", ">", " ", "é", "☁", "云", "🙂"]
        var s = ""
        let n = int(0...min(12, maxBytes))
        for _ in 0..<n {
            let c = alphabet[int(0...(alphabet.count - 1))]
            if s.utf8.count + c.utf8.count > maxBytes { break }
            s.append(c)
        }
        return s
    }

    mutating func hello() -> Hello {
        Hello(protocolVersion: [0, 1, 3, 7][int(0...3)],  // a version-2 hello would switch the rest of the stream to compact frames
              role: NodeRole.allCases[int(0...2)],
              nodeName: string(maxBytes: 255),
              fingerprint: ModelFingerprint(bytes: (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })!)
    }

    mutating func infer() -> InferRequest {
        let shape = (0..<int(1...3)).map { _ in int(1...3) }
        let n = shape.reduce(1, *)
        let t = Tensor(shape: shape, data: (0..<n).map { _ in Float.random(in: -50...50, using: &rng) })
        return InferRequest(sampleID: u64(), deadlineMillis: UInt32(truncatingIfNeeded: rng.next()),
                            stageIndex: UInt8(truncatingIfNeeded: rng.next()), tensor: t,
                            codec: FeatureCodecKind.allCases[int(0...2)])
    }

    mutating func result() -> InferResult {
        InferResult(status: bool() ? .ok : .degraded, reason: string(maxBytes: 100),
                    exitIndex: UInt8(truncatingIfNeeded: rng.next()), exitName: string(maxBytes: 255),
                    nodeName: string(maxBytes: 255), predictedClass: UInt16(truncatingIfNeeded: rng.next()),
                    confidence: Float.random(in: 0...1, using: &rng), entropy: Float.random(in: 0...3, using: &rng),
                    hops: (0..<int(0...3)).map { _ in
                        HopCost(link: string(maxBytes: 255), requestFrameBytes: hopBytes(), responseFrameBytes: hopBytes(),
                                requestTLSBytes: hopBytes(), responseTLSBytes: hopBytes())
                    })
    }

    mutating func frame() -> Frame {
        let id = bool() ? UInt64(int(0...5)) : u64()
        switch int(0...5) {
        case 0: return Frame(requestID: id, message: .hello(hello()))
        case 1: return Frame(requestID: id, message: .helloAck(hello()))
        case 2: return Frame(requestID: id, message: .infer(infer()))
        case 3: return Frame(requestID: id, message: .result(result()))
        case 4: return Frame(requestID: id, message: .error(ErrorFrame(code: ErrorCode(rawValue: UInt16(int(0...20))),
                                                                        message: string(maxBytes: 200))))
        default: return Frame(requestID: id, message: .goodbye)
        }
    }

    /// Damages valid bytes the way a broken or hostile peer might.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        switch int(0...6) {
        case 0:  // flip a few bits anywhere
            for _ in 0..<int(1...3) where !b.isEmpty { b[int(0...(b.count - 1))] ^= UInt8(1 << int(0...7)) }
        case 1:  // overwrite a payload byte with an extreme value
            if b.count > 20 { b[int(20...(b.count - 1))] = [0x00, 0xFF, 0x7F, 0x80][int(0...3)] }
        case 2:  // truncate
            b = Array(b.prefix(int(0...b.count)))
        case 3:  // append garbage and fix the length so it lands inside the payload
            let extra = (0..<int(1...8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            b += extra
            let length = UInt32(b.count - 20)
            b.replaceSubrange(16..<20, with: withUnsafeBytes(of: length.bigEndian, Array.init))
        case 4:  // lie about the length
            let length = UInt32(truncatingIfNeeded: max(0, b.count - 20 + int(-6...6)))
            b.replaceSubrange(16..<20, with: withUnsafeBytes(of: length.bigEndian, Array.init))
        case 5:  // random payload behind a valid header
            let n = int(0...64)
            b = Array(b.prefix(20)) + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            b.replaceSubrange(16..<20, with: withUnsafeBytes(of: UInt32(n).bigEndian, Array.init))
        default:  // pure noise
            b = (0..<int(0...40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        return b
    }
}

private enum Outcome: Equatable {
    case frame(Frame, consumed: Int)
    case needMore
    case error(WireError)
}

private func decodeWhole(_ bytes: [UInt8]) -> Outcome {
    var buffer = ByteBuffer(bytes: bytes)
    do {
        guard let frame = try buffer.readFrame() else { return .needMore }
        return .frame(frame, consumed: bytes.count - buffer.readableBytes)
    } catch let error as WireError {
        return .error(error)
    } catch {
        Issue.record("unexpected error type \(error)")
        return .needMore
    }
}

/// Feeds bytes one at a time, trying to decode after each, as a socket delivering
/// single bytes would. The bytes are stored up front and exposed one more at a time by
/// moving the writer index, which keeps this cheap in debug builds.
private func decodeByteAtATime(_ bytes: [UInt8]) -> Outcome {
    var decoder = FrameDecoder()
    var buffer = ByteBuffer(bytes: bytes)
    let end = buffer.writerIndex
    buffer.moveWriterIndex(to: buffer.readerIndex)
    for fed in 0..<bytes.count {
        buffer.moveWriterIndex(to: min(end, buffer.writerIndex + 1))
        do {
            if let frame = try decoder.decode(buffer: &buffer) {
                return .frame(frame, consumed: fed + 1 - buffer.readableBytes)
            }
        } catch let error as WireError {
            return .error(error)
        } catch {
            Issue.record("unexpected error type \(error)")
            return .needMore
        }
    }
    return .needMore
}

/// An accepted frame must be canonical: it validates, and re-encoding gives the same
/// bytes. Returns a description of the problem, if any.
private func checkAccepted(_ outcome: Outcome, _ bytes: [UInt8]) -> String? {
    guard case .frame(let frame, let consumed) = outcome else { return nil }
    do { try frame.validate() } catch { return "accepted frame fails validate: \(error)" }
    var again = ByteBuffer()
    again.writeFrame(frame)
    if again.readBytes(length: again.readableBytes) != Array(bytes.prefix(consumed)) {
        return "re-encoding \(frame) does not reproduce the input"
    }
    if frame.encodedSize != consumed { return "encodedSize \(frame.encodedSize) != \(consumed)" }
    return nil
}

/// Frames a decoder yields from a stream before it stops (needs more data or fails).
private func decodeStream(_ bytes: [UInt8]) -> [Frame] {
    var buffer = ByteBuffer(bytes: bytes)
    var frames: [Frame] = []
    while let frame = try? buffer.readFrame() { frames.append(frame) }
    return frames
}

@Suite("Bounded fuzzing of the frame decoder")
struct FrameFuzzTests {
    /// 20,000 frames (every fifth intact, the rest damaged), each decoded whole; every
    /// fourth also decoded byte by byte, which must reach the same verdict.
    @Test func randomAndMutatedFramesNeverCrash() {
        var gen = FrameGenerator(rng: SplitMix64(seed: 0x4252_4E59))
        var counts = (accepted: 0, rejected: 0, incomplete: 0)
        var failures: [String] = []
        for i in 0..<20_000 {
            let original = gen.frame()
            let validBytes = Array(Fixtures.bytes(original).readableBytesView)
            let bytes = i % 5 == 0 ? validBytes : gen.mutate(validBytes)
            let whole = decodeWhole(bytes)
            if i % 4 == 0 {
                let dripped = decodeByteAtATime(bytes)
                if whole != dripped { failures.append("case \(i): whole \(whole) vs byte-at-a-time \(dripped)") }
            }
            if i % 5 == 0 && whole != .frame(original, consumed: validBytes.count) {
                failures.append("case \(i): intact frame \(original) decoded as \(whole)")
            }
            if let problem = checkAccepted(whole, bytes) { failures.append("case \(i): \(problem)") }
            switch whole {
            case .frame: counts.accepted += 1
            case .error: counts.rejected += 1
            case .needMore: counts.incomplete += 1
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(3))")
        // The mutations must actually exercise all three outcomes.
        #expect(counts.accepted > 4_000)
        #expect(counts.rejected > 4_000)
        #expect(counts.incomplete > 500)
    }

    /// Streams of intact and damaged frames pushed through a real pipeline in small
    /// chunks: the channel yields exactly the frames a direct decode yields, then stops.
    @Test func mutatedStreamsThroughAChannelNeverCrash() throws {
        var gen = FrameGenerator(rng: SplitMix64(seed: 7))
        for _ in 0..<150 {
            var stream: [UInt8] = []
            for _ in 0..<3 {
                let valid = Array(Fixtures.bytes(gen.frame()).readableBytesView)
                stream += gen.bool() ? valid : gen.mutate(valid)
            }
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
            var received: [Frame] = []
            var offset = 0
            while offset < stream.count {
                let n = min(gen.int(1...7), stream.count - offset)
                do {
                    try channel.writeInbound(ByteBuffer(bytes: stream[offset..<(offset + n)]))
                } catch {
                    break
                }
                offset += n
                while let frame = try channel.readInbound(as: Frame.self) { received.append(frame) }
            }
            while let frame = try? channel.readInbound(as: Frame.self) { received.append(frame) }
            #expect(received == decodeStream(stream))
            _ = try? channel.finish()
        }
    }
}

extension Outcome {
    fileprivate var frame: Frame? {
        if case .frame(let f, _) = self { return f }
        return nil
    }
}
