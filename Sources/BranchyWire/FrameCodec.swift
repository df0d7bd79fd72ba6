import NIOCore

/// Splits a byte stream into ``Frame``s, following the connection's ``FrameDialect``.
///
/// Use with `ByteToMessageHandler(FrameDecoder())`. The decoder starts ``FrameDialect/open`` and
/// fixes the dialect from the first `hello` or `helloAck` it decodes: a client's hello on the
/// server side, the server's acknowledgement (with its names) on the client side. Any
/// ``WireError`` is fatal for the connection: the handler stops decoding and fires the error
/// down the pipeline.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = Frame

    /// The limits applied to every frame.
    public let limits: WireLimits
    /// How the next frame is laid out.
    public private(set) var dialect: FrameDialect

    /// Creates a decoder enforcing `limits`.
    public init(limits: WireLimits = .default, dialect: FrameDialect = .open) {
        self.limits = limits
        self.dialect = dialect
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let frame = try buffer.readFrame(limits: limits, dialect: dialect) else { return nil }
        observe(frame)
        return frame
    }

    /// Fixes the dialect once a hello or acknowledgement of a supported version has gone by.
    mutating func observe(_ frame: Frame) {
        guard dialect.version == nil else { return }
        switch frame.message {
        case .hello(let h) where FrameDialect.supportedVersions.contains(UInt8(clamping: h.protocolVersion)):
            dialect = .after(version: h.protocolVersion, names: .empty)
        case .helloAck(let h) where FrameDialect.supportedVersions.contains(UInt8(clamping: h.protocolVersion)):
            dialect = .after(version: h.protocolVersion, names: h.names)
        default:
            break
        }
    }

    /// The size of the next frame once its header is complete, or nil.
    public func peekFrameSize(_ buffer: ByteBuffer, maxPayload: Int) throws -> Int? {
        let header = dialect.isCompact
            ? try buffer.peekCompactFrameHeader(maxPayload: maxPayload)
            : try buffer.peekFrameHeader(maxPayload: maxPayload, required: dialect.version)
        return header.map { $0.size + Int($0.payloadLength) }
    }

    /// Decodes whatever complete frames remain; at EOF, a partial frame left in the
    /// buffer throws ``WireError/truncatedFrame(buffered:needed:)``.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) {
            return frame
        }
        if seenEOF && buffer.readableBytes > 0 {
            let needed = try peekFrameSize(buffer, maxPayload: limits.maxPayloadBytes)
            throw WireError.truncatedFrame(buffered: buffer.readableBytes, needed: needed)
        }
        return nil
    }
}

/// Serialises ``Frame``s in the connection's ``FrameDialect``.
///
/// Use with `MessageToByteHandler(FrameEncoder())`; one encoder per connection. It starts
/// ``FrameDialect/open`` and fixes the dialect from the `hello` (client) or `helloAck` (server)
/// it writes. Each frame is validated first, so this side never sends something a conforming
/// peer with the same limits would reject; a frame that fails validation fails its write
/// promise with a ``WireError``.
public final class FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    /// The limits checked before writing.
    public let limits: WireLimits
    /// How the next frame is laid out. Used on the channel's event loop only.
    public private(set) var dialect: FrameDialect

    /// Creates an encoder checking frames against `limits`.
    public init(limits: WireLimits = .default, dialect: FrameDialect = .open) {
        self.limits = limits
        self.dialect = dialect
    }

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        try data.validate(limits: limits, dialect: dialect)
        out.reserveCapacity(minimumWritableBytes: data.encodedSize(in: dialect))
        out.writeFrame(data, dialect: dialect)
        if dialect.version == nil {
            switch data.message {
            case .hello(let h), .helloAck(let h):
                if FrameDialect.supportedVersions.contains(UInt8(clamping: h.protocolVersion)) {
                    dialect = .after(version: h.protocolVersion, names: h.names)
                }
            default:
                break
            }
        }
    }
}
