import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// An edge or cloud node: accepts its children over mutual TLS, runs its stages on each
/// request, answers when an exit is sure, and otherwise forwards upstream.
public final class InferenceServer: @unchecked Sendable {
    public let context: NodeContext
    let group: EventLoopGroup
    let pool: NIOThreadPool
    let runner: StageRunner
    let link: UpstreamLink?
    let logger: Logger
    private let tls: NIOSSLContext
    private var serverChannel: Channel?
    private let connections = NIOLockedValueBox<[ObjectIdentifier: ServerConnectionHandler]>([:])

    public init(context: NodeContext, group: EventLoopGroup, pool: NIOThreadPool, logger: Logger) throws {
        guard context.config.listen != nil else { throw NodeError("node '\(context.config.name)' has no listen address") }
        self.context = context
        self.group = group
        self.pool = pool
        self.logger = logger
        self.runner = StageRunner(context: context)
        self.tls = try TLSLayer.serverContext(context.config.tls, node: context.config.name)
        self.link = context.upstream == nil ? nil : try UpstreamLink(context: context, loop: group.next(), logger: logger)
    }

    /// Binds the listen address and starts the upstream link. Returns the bound address.
    @discardableResult
    public func start() throws -> SocketAddress {
        link?.start()
        let endpoint = context.config.listen!
        let peers = Set(context.children.map { ServerConnectionStateMachine.PeerIdentity(name: $0.name, role: $0.role.wireRole) })
        let machineConfig = ServerConnectionStateMachine.Configuration(
            localHello: context.hello, allowedPeers: peers, maxInFlight: context.config.maxInFlight)
        let tls = self.tls
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ServerConnectionHandler(server: self, machine: ServerConnectionStateMachine(configuration: machineConfig))
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOSSLServerHandler(context: tls),
                        ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                        handler,
                    ])
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).wait()
        serverChannel = channel
        logger.info("\(context.config.role) '\(context.config.name)' hosting stages \(context.config.stages) listening on \(endpoint) (model \(context.model.spec.name) \(context.fingerprint.hex.prefix(16)))")
        return channel.localAddress!
    }

    func register(_ h: ServerConnectionHandler) { connections.withLockedValue { $0[ObjectIdentifier(h)] = h } }
    func unregister(_ h: ServerConnectionHandler) { connections.withLockedValue { $0[ObjectIdentifier(h)] = nil } }

    /// Stops accepting, lets every connection finish what is in flight (up to `graceSeconds`), then stops the link.
    public func drain(graceSeconds: Double = 10) {
        logger.info("draining: no new connections or requests; answering those in flight")
        try? serverChannel?.close().wait()
        for h in connections.withLockedValue({ Array($0.values) }) { h.beginDrain() }
        let until = Date().addingTimeInterval(graceSeconds)
        while Date() < until, !connections.withLockedValue({ $0.isEmpty }) { usleep(20_000) }
        let left = connections.withLockedValue { Array($0.values) }
        if !left.isEmpty { logger.warning("\(left.count) connections still open after \(graceSeconds) s; closing them") }
        for h in left { h.forceClose() }
        _ = try? link?.stop().wait()
        logger.info("drained")
    }

    /// Runs the hosted stages on a request and produces the answer frame (result or error).
    func process(_ request: InferRequest, on loop: EventLoop) -> EventLoopFuture<Frame.Message> {
        let first = runner.stageIndices[0]
        guard Int(request.stageIndex) == first else {
            return loop.makeSucceededFuture(.error(ErrorFrame(code: .badStage,
                message: "this node runs stage \(first) (\(context.config.stages.joined(separator: ","))), request is for stage \(request.stageIndex)")))
        }
        let tensor = request.tensor
        guard tensor.shape == runner.inputShape else {
            return loop.makeSucceededFuture(.error(ErrorFrame(code: .badTensor,
                message: "stage \(first) takes features of shape \(runner.inputShape), got \(tensor.shape)")))
        }
        let runner = self.runner
        return pool.runIfActive(eventLoop: loop) {
            runner.run(Tensor(shape: [1] + tensor.shape, data: tensor.data))
        }.flatMap { outcome -> EventLoopFuture<Frame.Message> in
            switch outcome {
            case .exited(let exit, let out):
                return loop.makeSucceededFuture(.result(self.result(exit: exit, out)))
            case .forward(let features, let next, let best):
                return self.forward(request, features: features, nextStage: next, best: best, on: loop)
            }
        }.recover { error in
            .error(ErrorFrame(code: .internalError, message: "\(error)"))
        }
    }

    private func forward(_ request: InferRequest, features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput),
                         on loop: EventLoop) -> EventLoopFuture<Frame.Message> {
        guard let link else {
            return loop.makeSucceededFuture(.result(result(exit: best.exit, best.output)))
        }
        let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
        // Leave a fifth of the caller's remaining budget for the answer to travel back down.
        let budget = request.deadlineMillis > 0 ? max(1, request.deadlineMillis / 5 * 4) : 0
        let up = InferRequest(sampleID: request.sampleID, deadlineMillis: budget, stageIndex: UInt8(nextStage),
                              features: context.codec.encode(item))
        return link.send(up).hop(to: loop).map { reply -> Frame.Message in
            var r = reply.result
            r.hops = [reply.cost] + r.hops
            return .result(r)
        }.flatMapErrorThrowing { error -> Frame.Message in
            let failure = (error as? UpstreamFailure) ?? .unavailable("\(error)")
            if self.context.config.onUpstreamFailure == .degrade {
                var r = self.result(exit: best.exit, best.output)
                r.status = .degraded
                r.reason = failure.description
                return .result(r)
            }
            return .error(ErrorFrame(code: failure.errorCode, message: failure.description))
        }
    }

    func result(exit: Int, _ out: ExitOutput) -> InferResult {
        InferResult(exitIndex: UInt8(exit), exitName: context.model.network.stages[exit].exitName, nodeName: context.config.name,
                    predictedClass: UInt16(out.predicted), confidence: out.confidence, entropy: out.entropy, hops: [])
    }
}

extension UpstreamFailure {
    /// The error code to send downstream when this failure cannot be degraded.
    public var errorCode: ErrorCode {
        switch self {
        case .unavailable: return .upstreamUnavailable
        case .deadline: return .deadlineExceeded
        case .remote(let e): return e.code
        case .overloaded: return .tooManyRequests
        }
    }
}
