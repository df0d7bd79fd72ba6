import BranchyTensor
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
@testable import BranchyWire

private func makeChannel(limits: WireLimits = .default) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limits: limits)))
    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder(limits: limits)))
    return channel
}

private func drainInbound(_ channel: EmbeddedChannel) throws -> [Frame] {
    var frames: [Frame] = []
    while let frame = try channel.readInbound(as: Frame.self) { frames.append(frame) }
    return frames
}

@Suite("FrameDecoder and FrameEncoder in a channel pipeline")
struct FrameCodecChannelTests {
    @Test func manyFramesInOneBuffer() throws {
        let channel = try makeChannel()
        try channel.writeInbound(Fixtures.bytes(Fixtures.everyFrame))
        #expect(try drainInbound(channel) == Fixtures.everyFrame)
        #expect(try channel.finish().isClean)
    }

    @Test func byteAtATimeDelivery() throws {
        let channel = try makeChannel()
        var all = Fixtures.bytes(Fixtures.everyFrame)
        var frames: [Frame] = []
        while let byte = all.readSlice(length: 1) {
            try channel.writeInbound(byte)
            frames += try drainInbound(channel)
        }
        #expect(frames == Fixtures.everyFrame)
        #expect(try channel.finish().isClean)
    }

    @Test func oddSizedChunks() throws {
        let channel = try makeChannel()
        var all = Fixtures.bytes(Fixtures.everyFrame + Fixtures.everyFrame)
        var frames: [Frame] = []
        var chunk = 1
        while all.readableBytes > 0 {
            let slice = all.readSlice(length: min(chunk, all.readableBytes))!
            try channel.writeInbound(slice)
            frames += try drainInbound(channel)
            chunk = chunk % 97 + 13
        }
        #expect(frames == Fixtures.everyFrame + Fixtures.everyFrame)
        #expect(try channel.finish().isClean)
    }

    @Test func encoderWritesExactlyWriteFrame() throws {
        let channel = try makeChannel()
        for frame in Fixtures.everyFrame {
            try channel.writeOutbound(frame)
            let bytes = try #require(try channel.readOutbound(as: ByteBuffer.self))
            #expect(bytes == Fixtures.bytes(frame))
            #expect(bytes.readableBytes == frame.encodedSize)
        }
        #expect(try channel.finish().isClean)
    }

    @Test func encoderOutputDecodesOnThePeer() throws {
        let sender = try makeChannel()
        let receiver = try makeChannel()
        for frame in Fixtures.everyFrame {
            try sender.writeOutbound(frame)
            while let bytes = try sender.readOutbound(as: ByteBuffer.self) { try receiver.writeInbound(bytes) }
        }
        #expect(try drainInbound(receiver) == Fixtures.everyFrame)
        #expect(try sender.finish().isClean)
        #expect(try receiver.finish().isClean)
    }

    @Test func invalidOutboundFrameFailsItsWrite() throws {
        let channel = try makeChannel()
        let nan = EncodedTensor(kind: .float16, shape: [1], bytes: [0x00, 0x7E])
        let frame = Frame(requestID: 1, message: .infer(InferRequest(sampleID: 1, stageIndex: 0, features: nan)))
        #expect(throws: WireError.self) { try channel.writeOutbound(frame) }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    @Test func truncatedFrameThenEOFIsReported() throws {
        let channel = try makeChannel()
        let whole = Fixtures.bytes(Fixtures.everyFrame[2])
        let part = whole.getSlice(at: 0, length: whole.readableBytes - 3)!
        try channel.writeInbound(part)
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect(throws: WireError.truncatedFrame(buffered: whole.readableBytes - 3, needed: whole.readableBytes)) {
            try channel.finish()
        }
    }

    @Test func truncatedHeaderThenEOFIsReported() throws {
        let channel = try makeChannel()
        try channel.writeInbound(Fixtures.bytes(Fixtures.everyFrame[0]).getSlice(at: 0, length: 9)!)
        #expect(throws: WireError.truncatedFrame(buffered: 9, needed: nil)) { try channel.finish() }
    }

    @Test func completeFramesBeforeEOFAreStillDelivered() throws {
        let channel = try makeChannel()
        var bytes = Fixtures.bytes(Array(Fixtures.everyFrame.prefix(3)))
        bytes.writeBytes([0x42, 0x52])
        try channel.writeInbound(bytes)
        #expect(try drainInbound(channel) == Array(Fixtures.everyFrame.prefix(3)))
        #expect(throws: WireError.truncatedFrame(buffered: 2, needed: nil)) { try channel.finish() }
    }

    @Test func oversizedHeaderFailsTheChannelImmediately() throws {
        let channel = try makeChannel(limits: WireLimits(maxPayloadBytes: 1024))
        #expect(throws: WireError.payloadTooLarge(length: 1025, limit: 1024)) {
            try channel.writeInbound(Fixtures.raw(type: 3, length: 1025, payload: []))
        }
        _ = try? channel.finish()
    }

    @Test func garbageFailsTheChannel() throws {
        let channel = try makeChannel()
        #expect(throws: WireError.badMagic(0x4854_5450)) {
            try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n"))
        }
        _ = try? channel.finish()
    }

    @Test func byteToMessageDecoderVerifier() throws {
        let pairs = Fixtures.everyFrame.map { (Fixtures.bytes($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }
}
