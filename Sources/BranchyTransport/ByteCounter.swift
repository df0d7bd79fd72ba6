import BranchyObservability
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

    /// The link's metrics, from the end of the handshake with hello on.
    private var meter: LinkByteMeter?

    /// The handler's place in its pipeline, from `handlerAdded` to `handlerRemoved`.
    private var context: ChannelHandlerContext?

    public init() {}

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Closes the connection from below TLS: no `close_notify` is sent or waited for, so a peer that
    /// does not read (or floods) is cut off at once. On the channel's event loop.
    public func closeBelowTLS() {
        context?.close(promise: nil)
    }

    /// True once `handshakeFinished(meter:)` was given a meter.
    public var finishedHandshake: Bool { meter != nil }

    /// The TLS handshake and hello exchange are done: what was counted so far goes to `meter` as
    /// the link's handshake bytes, and what follows as its records. On the channel's event loop.
    public func handshakeFinished(meter: LinkByteMeter?) {
        guard let meter, self.meter == nil else { return }
        meter.handshakeReceived.increment(by: Int64(bytesIn))
        meter.handshakeSent.increment(by: Int64(bytesOut))
        self.meter = meter
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let n = unwrapInboundIn(data).readableBytes
        bytesIn += UInt64(n)
        meter?.recordsReceived.increment(by: Int64(n))
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let n = unwrapOutboundIn(data).readableBytes
        bytesOut += UInt64(n)
        meter?.recordsSent.increment(by: Int64(n))
        context.write(data, promise: promise)
    }
}
