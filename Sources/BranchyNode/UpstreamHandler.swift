import BranchyTopology
import BranchyTransport
import BranchyWire
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// The link's handler at the top of its pipeline: hands the end of the TLS handshake (with the
/// names the server's certificate carries) and every frame to the link, whose state machine
/// checks the names, sends the hello and drops frames until the names were found right.
/// Lives on the link's loop.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame
    let link: UpstreamLink

    init(link: UpstreamLink) { self.link = link }

    /// Dials `endpoint` for `link`: TCP without Nagle, a byte counter below TLS, TLS, the frame
    /// codec and this handler on top.
    static func dial(_ endpoint: Endpoint, tls: NIOSSLContext, link: UpstreamLink) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: link.loop)
            .connectTimeout(.seconds(3))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No hostname: the server's identity is its node name, checked after the handshake.
                    let ssl = try NIOSSLClientHandler(context: tls, serverHostname: nil)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteCounter(), ssl,
                        ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                        UpstreamHandler(link: link),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            // A certificate for another node closes the connection; the event goes no further.
            guard link.tlsHandshakeCompleted(peerNames: TLSLayer.peerNames(of: context.pipeline), on: context.channel) else { return }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data), on: context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case NIOSSLError.uncleanShutdown = error {
            link.logger.debug("upstream closed without TLS close_notify")
        } else {
            link.logger.warning("upstream connection error: \(error)")
        }
        context.close(promise: nil)
    }
}
