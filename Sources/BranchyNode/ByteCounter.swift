import NIOCore

/// Counts the bytes that actually cross the socket. It sits first in the pipeline, below
/// TLS, so it sees ciphertext: records, handshakes and all.
public final class ByteCounter: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Bytes read from the socket so far. Read on the channel's event loop.
    public private(set) var bytesIn: UInt64 = 0
    /// Bytes written to the socket so far. Read on the channel's event loop.
    public private(set) var bytesOut: UInt64 = 0

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesIn += UInt64(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytesOut += UInt64(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

/// TLS 1.3 application-data overhead: each record adds a 5-byte header, a 1-byte inner content
/// type and a 16-byte AEAD tag, and carries at most 16 KiB of plaintext.
public enum TLSRecordOverhead {
    public static let perRecord = 22
    public static let maxPlaintext = 16_384

    /// Ciphertext bytes for one flushed frame of `frameBytes` bytes.
    public static func wireBytes(forFrame frameBytes: Int) -> Int {
        frameBytes + perRecord * max(1, (frameBytes + maxPlaintext - 1) / maxPlaintext)
    }
}
