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
