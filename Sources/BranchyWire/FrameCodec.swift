import NIOCore

/// Splits a byte stream into ``Frame``s.
///
/// Use with `ByteToMessageHandler(FrameDecoder())`. Any ``WireError`` is fatal for the
/// connection: the handler stops decoding and fires the error down the pipeline.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = Frame

    /// The limits applied to every frame.
    public let limits: WireLimits

    /// Creates a decoder enforcing `limits`.
    public init(limits: WireLimits = .default) {
        self.limits = limits
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try buffer.readFrame(limits: limits)
    }

    /// Decodes whatever complete frames remain; at EOF, a partial frame left in the
    /// buffer throws ``WireError/truncatedFrame(buffered:needed:)``.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) {
            return frame
        }
        if seenEOF && buffer.readableBytes > 0 {
            let needed = try buffer.peekFrameHeader(maxPayload: limits.maxPayloadBytes)
                .map { FrameHeader.size + Int($0.payloadLength) }
            throw WireError.truncatedFrame(buffered: buffer.readableBytes, needed: needed)
        }
        return nil
    }
}

/// Serialises ``Frame``s.
///
/// Use with `MessageToByteHandler(FrameEncoder())`. Each frame is validated first, so
/// this side never sends something a conforming peer with the same limits would reject;
/// a frame that fails validation fails its write promise with a ``WireError``.
public struct FrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = Frame

    /// The limits checked before writing.
    public let limits: WireLimits

    /// Creates an encoder checking frames against `limits`.
    public init(limits: WireLimits = .default) {
        self.limits = limits
    }

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        try data.validate(limits: limits)
        out.reserveCapacity(minimumWritableBytes: data.encodedSize)
        out.writeFrame(data)
    }
}
