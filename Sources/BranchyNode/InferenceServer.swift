import BranchyBatching
import BranchyLink
import BranchyModel
import BranchyObservability
import BranchyTensor
import BranchyTopology
import BranchyTransport
import BranchyWire
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// An edge or cloud node: accepts its children over mutual TLS, runs its stages on each
/// request, answers when an exit is sure, and otherwise forwards upstream.
///
/// Every accepted connection, the upstream link and the batcher live on one event loop (`loop`):
/// requests from all connections are gathered into batches there (`StageBatcher`), and a request
/// is read, computed, forwarded and answered without changing threads. The group's other loops
/// only accept connections; the thread pool takes batches too long to run on the loop.
///
/// As a swift-service-lifecycle `Service`, it serves until graceful shutdown, then drains.
public final class InferenceServer: Sendable {
    /// The context the server started with: its name, role, stages, model and addresses, which a
    /// reload cannot change. What a reload can change is in `current`.
    public let context: NodeContext
    let group: any EventLoopGroup
    /// The loop of every connection, the upstream link and the batcher.
    let loop: any EventLoop
    let pool: NIOThreadPool
    let link: UpstreamPool?
    let logger: Logger
    /// The node's metrics, when it serves them.
    public let metrics: NodeMetrics?
    let connections: ConnectionRegistry
    let budget: InputBudget
    let warnings = WarningLimiter()
    /// Seconds `run()` gives connections to finish what is in flight after graceful shutdown begins.
    let drainSeconds: Double
    /// The process's accept backoff, shared with its other listeners.
    let acceptBackoff: AcceptBackoff
    private let tls: NIOSSLContext
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let batcherBox: NIOLoopBoundBox<StageBatcher?>
    /// What a reload may change: the context in force and the stage runner with its thresholds.
    let live: NIOLockedValueBox<(context: NodeContext, runner: StageRunner)>
    /// True from the start of the drain on: the node is no longer ready.
    private let draining = NIOLockedValueBox(false)

    /// The context in force (the latest reload's, or the one the server started with).
    public var current: NodeContext { live.withLockedValue { $0.context } }
    /// The stage runner in force.
    var runner: StageRunner { live.withLockedValue { $0.runner } }
    /// Timeouts, caps and budgets in force (timeouts change on reload; caps and budgets do not).
    var limits: ServerLimits { live.withLockedValue { $0.context.config.limits } }

    public init(context: NodeContext, group: any EventLoopGroup, pool: NIOThreadPool, logger: Logger, drainSeconds: Double = 10,
                metrics: NodeMetrics? = nil, acceptBackoff: AcceptBackoff? = nil) throws {
        guard context.config.listen != nil else { throw NodeError("node '\(context.config.name)' has no listen address") }
        try TLSLayer.selfCheck(context.config.tls, node: context.config.name)
        self.context = context
        self.group = group
        let loop = group.next()
        self.loop = loop
        self.pool = pool
        self.logger = logger
        self.drainSeconds = drainSeconds
        self.acceptBackoff = acceptBackoff ?? AcceptBackoff(logger: logger)
        let limits = context.config.limits
        self.metrics = metrics
        self.live = NIOLockedValueBox((context, StageRunner(context: context)))
        self.tls = try TLSLayer.serverContext(context.config.tls, node: context.config.name)
        self.link = context.upstream == nil ? nil : try UpstreamPool(context: context, loop: loop, logger: logger, metrics: metrics)
        self.batcherBox = NIOLoopBoundBox.makeBoxSendingValue(nil, eventLoop: loop)
        // Keep some descriptors for the upstream link, the listening socket and files.
        let descriptors = FileDescriptorLimit.raiseSoftToHard() ?? Int.max
        let cap = min(limits.maxConnections, max(1, descriptors.subtractingReportingOverflow(64).partialValue))
        self.connections = ConnectionRegistry(maxConnections: cap, maxPerPeer: limits.maxConnectionsPerPeer)
        self.budget = InputBudget(total: limits.inputBudgetBytes, perPeer: limits.peerInputBudgetBytes)
        metrics?.setThresholds(context.policy.thresholds)
        let connections = self.connections
        metrics?.onScrape { [weak self] in
            guard let self else { return }
            metrics?.setConnections(connections.authenticatedCounts(into: self.context.config.name))
            metrics?.ready.set(to: await self.notReadyBecause() == nil ? 1 : 0)
        }
    }

    /// Nil when the node is ready to take requests: listening, not draining, and its upstream link
    /// up (or it is the root); otherwise why not.
    public func notReadyBecause() async -> String? {
        if serverChannel.withLockedValue({ $0 == nil }) { return "not listening" }
        if draining.withLockedValue({ $0 }) { return "draining" }
        if let accept = acceptBackoff.notReadyBecause { return accept }
        return await link?.notReadyBecause()
    }

    /// Logs `message` at `level` unless `source` has logged too much lately.
    func log(_ level: Logger.Level, from source: String, _ message: @autoclosure () -> String) {
        let verdict = warnings.admit(source)
        guard verdict.log else { return }
        let note = verdict.suppressed > 0 ? " (\(verdict.suppressed) similar lines from this source left out)" : ""
        logger.log(level: level, "\(message())\(note)")
    }

    /// The totals of this node's upstream link, for a child's `statsRequest`; empty at the root. Read on `loop`.
    var upstreamTotals: [LinkTotals] { link.map { [$0.totals] } ?? [] }

    /// Binds the listen address and starts the upstream link. Returns the bound address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        link?.start()
        let endpoint = context.config.listen!
        let peers = Set(context.children.map { ServerConnectionStateMachine.PeerIdentity(name: $0.name, role: $0.role.wireRole) })
        var known: [String: BranchyWire.NodeRole] = [:]
        for node in context.topology.nodes { known[node.name] = node.role.wireRole }
        let machineConfig = ServerConnectionStateMachine.Configuration(
            localHello: context.serverHello, allowedPeers: peers, knownNodes: known, maxInFlight: context.config.maxInFlight)
        let tls = self.tls
        // Compressed features must state the shape of this node's input before they are inflated.
        let wireLimits = WireLimits(compressedShape: context.model.network.stages[context.stageIndices[0]].inputShape)
        let channel = try await ServerBootstrap(group: group, childGroup: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        self.acceptBackoff.handler(listener: "the TLS port \(endpoint)") { self.shedForAccept() })
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id: UInt64
                    switch self.connections.admit(channel) {
                    case .failure(let refusal):
                        self.log(.warning, from: "admit", "refusing a connection from \(channel.remoteAddress.map { "\($0)" } ?? "?"): \(refusal)")
                        throw refusal
                    case .success(let admitted):
                        id = admitted.id
                        if let shed = admitted.shed {
                            self.log(.info, from: "shed", "\(self.connections.maxConnections) connections open; closing "
                                         + "\(shed.peer.map { "the oldest idle one, of \($0)" } ?? "the oldest one without a hello"), "
                                         + "from \(shed.channel.remoteAddress.map { "\($0)" } ?? "?")")
                            shed.channel.close(promise: nil)
                        }
                    }
                    let reservation = InputReservation(budget: self.budget)
                    let handler = ServerConnectionHandler(server: self, id: id, reservation: reservation,
                                                          machine: ServerConnectionStateMachine(configuration: machineConfig))
                    // The idle timer sits below TLS: any bytes received count as activity, so a large
                    // frame arriving slowly is not cut off. The byte counter, lowest, sees ciphertext.
                    let idle = TimeAmount.milliseconds(Int64(self.limits.idleTimeoutMillis))
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteCounter(),
                        IdleStateHandler(readTimeout: idle),
                        NIOSSLServerHandler(context: tls),
                        ByteToMessageHandler(BudgetedFrameDecoder(reservation: reservation, limits: wireLimits)), MessageToByteHandler(FrameEncoder()),
                        handler,
                    ])
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).get()
        serverChannel.withLockedValue { $0 = channel }
        logger.info("\(context.config.role) '\(context.config.name)' hosting stages \(context.config.stages) listening on \(endpoint)\(context.config.address.map { ", dialled at \($0)" } ?? "") (batches of at most \(context.config.maxBatch) samples, waiting at most \(context.config.maxBatchDelayMicros) µs; model \(context.model.spec.name) \(context.fingerprint.hex.prefix(16)); at most \(connections.maxConnections) connections, \(limits.maxConnectionsPerPeer) per peer; handshake timeout \(limits.handshakeTimeoutMillis) ms, idle timeout \(limits.idleTimeoutMillis) ms; input budget \(limits.inputBudgetBytes) bytes, \(limits.peerInputBudgetBytes) per peer)")
        return channel.localAddress!
    }

    /// With the descriptor table full, closes unauthenticated and idle connections so that valid
    /// peers get in; returns how many. On the listening channel's loop.
    private func shedForAccept() -> Int {
        let victims = connections.shed(max(1, connections.count / 16))
        for victim in victims { victim.close(promise: nil) }
        return victims.count
    }

    /// Stops accepting, lets every connection finish what is in flight (up to `graceSeconds`), then stops the link.
    public func drain(graceSeconds: Double = 10) async {
        draining.withLockedValue { $0 = true }
        logger.info("draining: no new connections or requests; answering those in flight")
        let listener = serverChannel.withLockedValue { channel -> (any Channel)? in
            defer { channel = nil }
            return channel
        }
        try? await listener?.close()
        let open = connections.beginDrain()
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ServerConnectionHandler.Drain()) }
        if !(await Self.waitForClose(open, seconds: graceSeconds, on: group.next())) {
            let left = connections.all()
            logger.warning("\(left.count) connections still open after \(graceSeconds) s; closing them")
            for channel in left { try? await channel.close() }
        }
        _ = try? await link?.stop().get()
        let batches = await batchHistogram()
        logger.info("drained; \(batches.summary); \(batches.timing)")
    }

    /// Sizes of the batches run so far.
    public func batchHistogram() async -> BatchHistogram {
        let box = batcherBox
        return (try? await loop.submit { box.value?.histogram ?? BatchHistogram() }.get()) ?? BatchHistogram()
    }

    /// The batcher, made on first use. On `loop`.
    var batcher: StageBatcher {
        if let b = batcherBox.value { return b }
        let b = StageBatcher(server: self, loop: loop)
        batcherBox.value = b
        return b
    }

    /// True when every channel closed within `seconds`.
    private static func waitForClose(_ channels: [any Channel], seconds: Double, on loop: any EventLoop) async -> Bool {
        let done = loop.makePromise(of: Bool.self)
        EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: loop).whenComplete { _ in done.succeed(true) }
        let timer = loop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) { done.succeed(false) }
        let closed = (try? await done.futureResult.get()) ?? false
        timer.cancel()
        return closed
    }

    /// Checks that a request is for this node's first stage and has its input's shape; nil when it is.
    /// Reads only what a reload cannot change (the stages), so it takes no lock.
    func refusal(of request: InferRequest) -> ErrorFrame? {
        let first = context.stageIndices[0]
        let inputShape = context.model.network.stages[first].inputShape
        guard Int(request.stageIndex) == first else {
            return ErrorFrame(code: .badStage,
                message: "this node runs stage \(first) (\(context.config.stages.joined(separator: ","))), request is for stage \(request.stageIndex)")
        }
        guard request.features.shape == inputShape else {
            return ErrorFrame(code: .badTensor,
                message: "stage \(first) takes features of shape \(inputShape), got \(request.features.shape)")
        }
        if let problem = request.features.inconsistency {
            return ErrorFrame(code: .badTensor, message: "features do not fit together: \(problem)")
        }
        return nil
    }

    /// Sends features upstream for the next stage; the answer (or, when upstream fails, the node's
    /// own best exit or an error, by its policy) completes on `loop`. `passed` are the entropies of
    /// the exits computed here (the last is `best`'s); the answer carries them in front of upstream's.
    func forward(_ request: InferRequest, arrival: UInt64, features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput),
                 passed: [Float], on loop: any EventLoop) -> EventLoopFuture<Frame.Message> {
        let timed = request.wantsTimings
        guard let link else {
            var r = result(exit: best.exit, best.output)
            r.passedEntropies = Array(passed.dropLast())
            if timed { r.serviceMicros = Self.micros(since: arrival) }
            return loop.makeSucceededFuture(.result(r))
        }
        let context = current
        let deadline = Forwarder.upstreamDeadline(callerMillis: request.deadlineMillis, arrival: arrival)
        var forwarded = Forwarder.Request(wantsProbabilities: request.wantsProbabilities, thresholds: request.exitThresholds, wantsTimings: timed)
        forwarded.deadlineMillis = deadline
        return Forwarder(link: link).forward(sampleID: request.sampleID, features: features, nextStage: nextStage, request: forwarded,
                                             best: best, passed: passed, context: context).hop(to: loop).map { outcome -> Frame.Message in
            switch outcome {
            case .answered(var r):
                if timed { r.serviceMicros = Self.micros(since: arrival) }
                return .result(r)
            case .degraded(let exit, let output, let failure):
                var r = self.result(exit: exit, output)
                r.status = .degraded
                r.reason = failure.description
                r.passedEntropies = Array(passed.dropLast())
                if timed { r.serviceMicros = Self.micros(since: arrival) }
                return .result(r)
            case .failed(let failure):
                return .error(ErrorFrame(code: failure.errorCode, message: failure.description))
            }
        }
    }

    /// Microseconds since `start` (uptime ns), at least 1: a timing of 0 means "not measured".
    static func micros(since start: UInt64, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> UInt64 {
        max(1, (now &- start) / 1000)
    }

    func result(exit: Int, _ out: ExitOutput) -> InferResult {
        var r = InferResult(exitIndex: UInt8(exit), exitName: context.model.network.stages[exit].exitName, nodeName: context.config.name,
                            predictedClass: UInt16(out.predicted), confidence: out.confidence, entropy: out.entropy, hops: [])
        r.probabilities = out.probabilities ?? []
        return r
    }
}

extension InferenceServer: Service {
    /// Serves until graceful shutdown (SIGTERM or SIGINT under a `ServiceGroup`), then drains.
    public func run() async throws {
        if serverChannel.withLockedValue({ $0 == nil }) { try await start() }
        try? await gracefulShutdown()
        await drain(graceSeconds: drainSeconds)
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
        case .invalidAnswer: return .upstreamUnavailable
        }
    }
}
