import BranchyServing
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An HTTP/1.1 listener serving the Open Inference Protocol for one backend, over plain TCP or TLS.
public final class FrontDoorServer: Sendable {
    public let channel: any Channel

    /// Binds `host`:`port` (0: any free port) and serves `backend` until ``close()``.
    /// `readTimeout`: a connection that sends nothing for this long is answered 408 mid-request, else closed.
    /// `observer` hears of every answer (for metrics). With `tls`, connections are TLS (``FrontDoorTLS``).
    public static func start(host: String, port: Int, backend: any InferenceBackend, group: any EventLoopGroup,
                             limits: InferenceRequest.Limits = .init(), readTimeout: TimeAmount = .seconds(30),
                             observer: FrontDoorObserver? = nil, tls: NIOSSLContext? = nil) async throws -> FrontDoorServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: readTimeout),
                        FrontDoorHTTPHandler(backend: backend, limits: limits, observer: observer),
                    ])
                }
            }
            .bind(host: host, port: port).get()
        return FrontDoorServer(channel: channel)
    }

    private init(channel: any Channel) { self.channel = channel }

    /// The bound address (with the port chosen when 0 was asked for).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Stops listening.
    public func close() async { try? await channel.close() }
}
