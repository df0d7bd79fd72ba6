import BranchyObservability
import BranchyTopology
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A node's plain-HTTP operations endpoint: `GET /metrics` (Prometheus text format), `/healthz`
/// (200 while the process serves) and `/readyz` (200 when `readiness` says so, else 503 with the
/// reason). Anything else is 404; methods other than GET and HEAD are 405. Requests must be
/// small (no body is read) and every connection closes after its answer.
public final class MetricsServer: Sendable {
    /// Content type of the Prometheus text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let metrics: NodeMetrics
    /// Nil when ready; otherwise why not.
    public let readiness: @Sendable () async -> String?
    public let channel: any Channel

    /// Binds `endpoint` and serves until `close()`.
    /// `acceptBackoff` is the process's policy for failed accepts, shared with its other listeners.
    public static func start(at endpoint: Endpoint, metrics: NodeMetrics, group: any EventLoopGroup, logger: Logger,
                             acceptBackoff: AcceptBackoff? = nil,
                             readiness: @escaping @Sendable () async -> String?) async throws -> MetricsServer {
        let backoff = acceptBackoff ?? AcceptBackoff(logger: logger)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(backoff.handler(listener: "the metrics port \(endpoint)"))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: .seconds(10)),
                        MetricsHTTPHandler(metrics: metrics, readiness: readiness),
                    ])
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).get()
        logger.info("metrics and health on http://\(endpoint)/metrics, /healthz, /readyz")
        return MetricsServer(metrics: metrics, readiness: readiness, channel: channel)
    }

    private init(metrics: NodeMetrics, readiness: @escaping @Sendable () async -> String?, channel: any Channel) {
        self.metrics = metrics
        self.readiness = readiness
        self.channel = channel
    }

    /// The bound address (with the port chosen when 0 was asked for).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Stops listening.
    public func close() async {
        try? await channel.close()
    }
}

/// Answers one request per connection on the operations endpoint.
public final class MetricsHTTPHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    public let metrics: NodeMetrics
    public let readiness: @Sendable () async -> String?
    private var head: HTTPRequestHead?

    public init(metrics: NodeMetrics, readiness: @escaping @Sendable () async -> String?) {
        self.metrics = metrics
        self.readiness = readiness
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            answer(head, context: context)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard head.method == .GET || head.method == .HEAD else {
            respond(context, head, .methodNotAllowed, "only GET and HEAD\n", extra: [("Allow", "GET, HEAD")])
            return
        }
        let loop = context.eventLoop
        let boxed = NIOLoopBound((self, context), eventLoop: loop)
        switch path {
        case "/healthz":
            respond(context, head, .ok, "ok\n")
        case "/readyz":
            let readiness = self.readiness
            let promise = loop.makePromise(of: String?.self)
            promise.completeWithTask { await readiness() }
            promise.futureResult.whenSuccess { problem in
                let (handler, context) = boxed.value
                if let problem {
                    handler.respond(context, head, .serviceUnavailable, "not ready: \(problem)\n")
                } else {
                    handler.respond(context, head, .ok, "ready\n")
                }
            }
        case "/metrics":
            let metrics = self.metrics
            let promise = loop.makePromise(of: [UInt8].self)
            promise.completeWithTask { await metrics.scrape() }
            promise.futureResult.whenSuccess { bytes in
                let (handler, context) = boxed.value
                handler.respond(context, head, .ok, bytes, contentType: MetricsServer.contentType)
            }
        default:
            respond(context, head, .notFound, "not found: try /metrics, /healthz or /readyz\n")
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ text: String,
                         extra: [(String, String)] = []) {
        respond(context, head, status, Array(text.utf8), contentType: "text/plain; charset=utf-8", extra: extra)
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ body: [UInt8],
                         contentType: String, extra: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)"), ("Connection", "close")])
        for (k, v) in extra { headers.add(name: k, value: v) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
