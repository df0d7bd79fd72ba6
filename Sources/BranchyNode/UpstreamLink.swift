import BranchyObservability
import BranchyTensor
import BranchyTopology
import BranchyTransport
import BranchyWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Why an upstream request got no result.
public enum UpstreamFailure: Error, CustomStringConvertible, Sendable {
    /// Not connected, connection lost, or refused the handshake.
    case unavailable(String)
    /// No answer within the deadline.
    case deadline(Int)
    /// The upstream node answered with an error frame.
    case remote(ErrorFrame)
    /// Too many requests queued for the link.
    case overloaded(Int)
    /// The upstream node answered with a result this node cannot trust (an exit or class the model
    /// does not have); the connection is dropped.
    case invalidAnswer(String)

    public var description: String {
        switch self {
        case .unavailable(let why): return "upstream unavailable: \(why)"
        case .deadline(let ms): return "upstream deadline of \(ms) ms exceeded"
        case .remote(let e): return "upstream error: \(e)"
        case .overloaded(let n): return "upstream link overloaded (\(n) requests queued)"
        case .invalidAnswer(let why): return "upstream answer refused: \(why)"
        }
    }
}

/// An upstream answer and what it cost on this link.
public struct UpstreamReply: Sendable {
    public var result: InferResult
    public var cost: HopCost
}

/// The connection from a node to its upstream node: one mutual-TLS connection shared by all
/// requests (matched by request id), reconnected with capped exponential backoff and jitter,
/// with a bounded in-flight window, a bounded queue behind it and a deadline per request.
/// Every request sent gets exactly one completion: a reply or an `UpstreamFailure`.
///
/// All mutable state lives in a box bound to `loop`; public methods may be called from any thread.
public final class UpstreamLink: Sendable {
    public let loop: any EventLoop
    let local: Hello
    let upstream: NodeConfig
    let linkName: String
    /// The address this link dials: the upstream node's, or one of its replicas'.
    let endpoint: Endpoint
    /// How metrics and logs name the replica this link dials ("0" for an upstream of one process).
    let replicaLabel: String
    let tls: NIOSSLContext
    let logger: Logger
    let metrics: NodeMetrics?
    /// Backoff between reconnection attempts; replicas retry sooner, as their children have others meanwhile.
    let backoffCapMillis: Int
    /// The model's exit names, in order, and its class count: what a result from upstream may name.
    let exitNames: [String]
    let classCount: Int
    /// The first exit upstream can answer from: the one after this node's last stage.
    let firstUpstreamExit: Int

    private struct Pending {
        var promise: EventLoopPromise<UpstreamReply>
        /// When the request was written.
        var sent: NIODeadline
        var requestFrameBytes: Int
        var requestTLSBytes: Int
        var timer: Scheduled<Void>
    }
    /// A request waiting behind a full window; its deadline runs while it waits.
    private struct Queued {
        var request: InferRequest
        var promise: EventLoopPromise<UpstreamReply>
        var due: NIODeadline
        var timer: Scheduled<Void>
    }

    private struct State {
        var channel: (any Channel)?
        var counter: ByteCounter?
        var ready = false
        var stopped = false
        var pending: [UInt64: Pending] = [:]
        /// The window, the queue behind it and the deadline: set at start and by `reconfigure`.
        var maxInFlight: Int
        var maxQueued: Int
        var deadlineMillis: Int
        /// With heartbeats on: when the unanswered heartbeat was sent, if one is.
        var heartbeatSent: NIODeadline?
        var waiting: [UInt64: Queued] = [:]
        /// Ids of `waiting` requests in arrival order (ids already expired are skipped).
        var queue = CircularBuffer<UInt64>()
        var nextID: UInt64 = 1
        /// Ids answered on this connection, free to use again: with a small window the ids stay
        /// below 128, one byte each as varints. Ids of requests that expired in flight are never
        /// reused (their answer may still come).
        var freeIDs: [UInt64] = []
        var backoff: Backoff
        var readyWaiters: [EventLoopPromise<Void>] = []
        var handshakeBytes: UInt64 = 0
        var connections = 0
        var closedBytesIn: UInt64 = 0
        var closedBytesOut: UInt64 = 0
        /// Requests written since the last flush, in order.
        var unflushed: [UInt64] = []
        var flushScheduled = false
        /// The current connection's frame layout, fixed by its handshake.
        var dialect = FrameDialect.open
        /// `statsRequest`s sent and not yet answered.
        var statsWaiters: [UInt64: EventLoopPromise<[LinkTotals]>] = [:]
        /// Why the last attempt to connect failed or the last connection ended, until the next hello succeeds.
        var lastProblem: String?
    }

    private let box: NIOLoopBoundBox<State>
    private var state: State {
        _read { yield box.value }
        _modify { yield &box.value }
    }

    /// This link's totals, as a server reports them to its children. Read on `loop`.
    public var totals: LinkTotals {
        let bytes = measuredBytes
        return LinkTotals(link: linkName, connections: UInt64(state.connections), handshakeBytes: state.handshakeBytes,
                          bytesSent: bytes.sent, bytesReceived: bytes.received)
    }

    /// Asks the upstream node for the totals of its own upstream link (version 2 only); an empty
    /// list from the root. Fails when not connected, on version 1, or after `timeoutMillis`.
    public func upstreamTotals(timeoutMillis: Int64 = 2_000) -> EventLoopFuture<[LinkTotals]> {
        loop.flatSubmit {
            guard self.state.ready, let channel = self.state.channel, self.state.dialect.isCompact else {
                return self.loop.makeFailedFuture(UpstreamFailure.unavailable("no version 2 connection to \(self.upstream.name)"))
            }
            // Ids are shared with requests and reused once answered, so that they stay one byte.
            let id: UInt64
            if let free = self.state.freeIDs.popLast() {
                id = free
            } else {
                id = self.state.nextID
                self.state.nextID += 1
            }
            let p = self.loop.makePromise(of: [LinkTotals].self)
            self.state.statsWaiters[id] = p
            channel.writeAndFlush(Frame(requestID: id, message: .statsRequest), promise: nil)
            self.loop.scheduleTask(in: .milliseconds(timeoutMillis)) {
                // Only this connection's waiter: after a reconnect the id may belong to another.
                guard self.state.channel === channel else { return }
                self.state.statsWaiters.removeValue(forKey: id)?.fail(UpstreamFailure.deadline(Int(timeoutMillis)))
            }
            return p.futureResult
        }
    }

    /// Bytes counted below TLS on every connection of this link so far (handshakes included): sent, received.
    /// Read on `loop`.
    public var measuredBytes: (sent: UInt64, received: UInt64) {
        (state.closedBytesOut + (state.counter?.bytesOut ?? 0), state.closedBytesIn + (state.counter?.bytesIn ?? 0))
    }

    public init(context: NodeContext, loop: any EventLoop, logger: Logger, endpoint: Endpoint? = nil, replicaLabel: String = "0",
                metrics: NodeMetrics? = nil) throws {
        guard let up = context.upstream else { throw NodeError("node '\(context.config.name)' has no upstream") }
        guard let endpoint = endpoint ?? up.dialAddress else { throw NodeError("upstream '\(up.name)' has no address to dial") }
        self.loop = loop
        self.endpoint = endpoint
        self.replicaLabel = replicaLabel
        self.metrics = metrics
        self.backoffCapMillis = up.isReplicated ? 1_000 : 5_000
        var hello = context.hello
        hello.names = .empty  // names travel from servers only
        self.local = hello
        self.upstream = up
        self.linkName = "\(context.config.name)->\(up.name)"
        self.exitNames = context.model.network.stages.map(\.exitName)
        self.classCount = context.model.spec.classes
        self.firstUpstreamExit = (context.stageIndices.last ?? -1) + 1
        self.tls = try TLSLayer.clientContext(context.config.tls, node: context.config.name)
        self.logger = logger
        self.box = NIOLoopBoundBox.makeBoxSendingValue(
            State(maxInFlight: context.config.maxInFlight, maxQueued: context.config.maxInFlight * 16,
                  deadlineMillis: context.config.deadlineMillis, backoff: Backoff(maxMillis: backoffCapMillis)),
            eventLoop: loop)
    }

    /// Applies a reloaded node's window and deadline to requests sent from now on. On `loop`.
    func reconfigure(maxInFlight: Int, deadlineMillis: Int) {
        state.maxInFlight = maxInFlight
        state.maxQueued = maxInFlight * 16
        state.deadlineMillis = deadlineMillis
        drainQueue()
    }

    /// True while connected with the hello done (and not told to go away). Read on `loop`.
    var isReady: Bool { state.ready && !state.stopped }
    /// Why the link is down (the last failed dial or lost connection), when it is. Read on `loop`.
    var lastProblem: String? { isReady ? nil : state.lastProblem }
    /// Requests sent and unanswered, and queued behind the window. Read on `loop`.
    var outstanding: (inFlight: Int, queued: Int) { (state.pending.count, state.waiting.count) }

    /// Sends a `statsRequest` every `intervalMillis` while connected (protocol version 2), one at
    /// a time; a connection that leaves one unanswered for `timeoutMillis` is closed, as the replica
    /// behind it is taken to be dead or hung (its requests fail over to other replicas). On `loop`.
    func startHeartbeat(intervalMillis: Int64, timeoutMillis: Int64) {
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(intervalMillis), delay: .milliseconds(intervalMillis)) { task in
            guard !self.state.stopped else { task.cancel(); return }
            guard self.state.ready, let channel = self.state.channel, self.state.dialect.isCompact else {
                self.state.heartbeatSent = nil
                return
            }
            if let sent = self.state.heartbeatSent {
                if NIODeadline.now() - sent >= .milliseconds(timeoutMillis) {
                    self.logger.warning("upstream \(self.upstream.name) at \(self.endpoint) did not answer a heartbeat within \(timeoutMillis) ms; closing")
                    self.state.heartbeatSent = nil
                    channel.close(promise: nil)
                }
                return
            }
            self.state.heartbeatSent = .now()
            self.upstreamTotals(timeoutMillis: timeoutMillis * 2).whenSuccess { _ in self.state.heartbeatSent = nil }
        }
    }

    /// Starts connecting (and reconnecting whenever the connection drops).
    public func start() {
        loop.execute { self.connect() }
    }

    /// Completes once the handshake with upstream has succeeded, or fails after `timeoutMillis`.
    public func waitUntilReady(timeoutMillis: Int64) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            if self.state.ready { return self.loop.makeSucceededVoidFuture() }
            let p = self.loop.makePromise(of: Void.self)
            self.state.readyWaiters.append(p)
            let name = self.upstream.name
            self.loop.scheduleTask(in: .milliseconds(timeoutMillis)) {
                p.fail(UpstreamFailure.unavailable("no handshake with \(name) within \(timeoutMillis) ms"))
            }
            return p.futureResult
        }
    }

    /// Sends a request upstream. The future always completes exactly once, on `loop`.
    ///
    /// Called on `loop`, the request is written at once (no hop); requests written in one turn
    /// of the loop go out in one flush.
    public func send(_ request: InferRequest) -> EventLoopFuture<UpstreamReply> {
        let promise = loop.makePromise(of: UpstreamReply.self)
        if loop.inEventLoop {
            enqueue(request, promise)
        } else {
            loop.execute { self.enqueue(request, promise) }
        }
        return promise.futureResult
    }

    /// Stops reconnecting, fails what is pending and closes the connection.
    public func stop() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.state.stopped = true
            self.failAll(.unavailable("link stopped"))
            return self.state.channel?.close() ?? self.loop.makeSucceededVoidFuture()
        }.recover { _ in }
    }

    // MARK: - On the loop

    private func enqueue(_ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>) {
        guard state.ready, let channel = state.channel, !state.stopped else {
            promise.fail(UpstreamFailure.unavailable(state.stopped ? "link stopped" : "not connected to \(upstream.name)"))
            return
        }
        guard state.pending.count < state.maxInFlight || state.waiting.count < state.maxQueued else {
            promise.fail(UpstreamFailure.overloaded(state.waiting.count))
            return
        }
        let id: UInt64
        if let free = state.freeIDs.popLast() {
            id = free
        } else {
            id = state.nextID
            state.nextID += 1
        }
        // The tighter of this link's deadline and what the request still has left; it runs from now,
        // queueing included.
        let ms = request.deadlineMillis > 0 ? min(state.deadlineMillis, Int(request.deadlineMillis)) : state.deadlineMillis
        let due = NIODeadline.now() + .milliseconds(Int64(ms))
        let timer: Scheduled<Void> = loop.scheduleTask(deadline: due) { [weak self] in self?.expire(id, ms) }
        if state.pending.count >= state.maxInFlight {
            state.waiting[id] = Queued(request: request, promise: promise, due: due, timer: timer)
            state.queue.append(id)
            if state.queue.count > 2 * state.maxQueued {  // drop ids that expired while queued
                let waiting = state.waiting
                state.queue = CircularBuffer(state.queue.filter { waiting[$0] != nil })
            }
            return
        }
        transmit(id: id, request, promise, due: due, timer: timer, on: channel)
    }

    private func transmit(id: UInt64, _ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>,
                          due: NIODeadline, timer: Scheduled<Void>, on channel: any Channel) {
        var req = request
        // What is left of the deadline travels with the request, so the next hop gives up in time.
        req.deadlineMillis = UInt32(max(1, (due - NIODeadline.now()).nanoseconds / 1_000_000))
        let frame = Frame(requestID: id, message: .infer(req))
        do {
            // A frame the encoder would refuse (say, features that overflowed to infinity) must fail
            // this request alone, not the encoder and with it every request on the connection.
            try frame.validate(dialect: state.dialect)
        } catch {
            timer.cancel()
            promise.fail(UpstreamFailure.remote(ErrorFrame(code: .badTensor, message: "features not sendable: \(error)")))
            return
        }
        channel.write(frame, promise: nil)
        state.pending[id] = Pending(promise: promise, sent: .now(), requestFrameBytes: frame.encodedSize(in: state.dialect), requestTLSBytes: 0, timer: timer)
        state.unflushed.append(id)
        if !state.flushScheduled {
            state.flushScheduled = true
            loop.execute { self.flushWrites() }
        }
    }

    /// Flushes what this turn of the loop wrote, and gives each request its share of the bytes the
    /// flush put on the socket (measured below TLS): each frame is its own TLS record, so each gets
    /// the record layout's size, and the last one what is left, so that the shares add up to the
    /// measured total.
    private func flushWrites() {
        state.flushScheduled = false
        let ids = state.unflushed
        state.unflushed.removeAll(keepingCapacity: true)
        guard let channel = state.channel, !ids.isEmpty else { return }
        let before = state.counter?.bytesOut ?? 0
        channel.flush()
        var left = Int((state.counter?.bytesOut ?? 0) &- before)
        for (k, id) in ids.enumerated() {
            guard let p = state.pending[id] else { continue }
            let share = k == ids.count - 1 ? max(0, left) : min(max(0, left), TLSRecordOverhead.wireBytes(forFrame: p.requestFrameBytes))
            state.pending[id]!.requestTLSBytes = share
            left -= share
        }
    }

    /// The deadline of request `id` passed, in flight or still queued.
    private func expire(_ id: UInt64, _ ms: Int) {
        if let q = state.waiting.removeValue(forKey: id) {
            q.promise.fail(UpstreamFailure.deadline(ms))
            state.freeIDs.append(id)  // never sent
            return
        }
        complete(id, .failure(.deadline(ms)))
    }

    /// Completes request `id` if it is in flight; returns whether it was.
    @discardableResult
    private func complete(_ id: UInt64, _ outcome: Result<(InferResult, Int), UpstreamFailure>) -> Bool {
        guard let p = state.pending.removeValue(forKey: id) else { return false }  // late or unknown: already answered
        p.timer.cancel()
        switch outcome {
        case .success(let (result, responseFrameBytes)):
            let cost = HopCost(link: linkName, requestFrameBytes: UInt64(p.requestFrameBytes), responseFrameBytes: UInt64(responseFrameBytes),
                               requestTLSBytes: UInt64(p.requestTLSBytes),
                               responseTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: responseFrameBytes)))
            metrics?.upstreamAnswered(link: linkName, nanos: UInt64(max(0, (NIODeadline.now() - p.sent).nanoseconds)))
            p.promise.succeed(UpstreamReply(result: result, cost: cost))
        case .failure(let f):
            p.promise.fail(f)
        }
        drainQueue()
        return true
    }

    private func drainQueue() {
        guard let channel = state.channel, state.ready else { return }
        while state.pending.count < state.maxInFlight, let id = state.queue.popFirst() {
            guard let q = state.waiting.removeValue(forKey: id) else { continue }  // expired while queued
            transmit(id: id, q.request, q.promise, due: q.due, timer: q.timer, on: channel)
        }
    }

    private func failAll(_ f: UpstreamFailure) {
        let ps = state.pending
        state.pending = [:]
        for (_, p) in ps { p.timer.cancel(); p.promise.fail(f) }
        let ws = state.waiting
        state.waiting = [:]
        state.queue.removeAll()
        for (_, q) in ws { q.timer.cancel(); q.promise.fail(f) }
    }

    private func connect() {
        guard !state.stopped else { return }
        let endpoint = self.endpoint
        let tls = self.tls
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(3))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No hostname: the server's identity is its node name, checked after the handshake.
                    let ssl = try NIOSSLClientHandler(context: tls, serverHostname: nil)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteCounter(), ssl,
                        ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                        UpstreamHandler(link: self),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                switch result {
                case .success(let ch):
                    self.state.channel = ch
                    self.state.counter = try? ch.pipeline.syncOperations.handler(type: ByteCounter.self)
                    ch.closeFuture.whenComplete { _ in self.connectionClosed(ch) }
                case .failure(let error):
                    self.scheduleReconnect(reason: "connect to \(self.upstream.name) at \(endpoint) failed: \(error)")
                }
            }
    }

    private func scheduleReconnect(reason: String) {
        guard !state.stopped else { return }
        state.lastProblem = reason
        let delay = state.backoff.next(random: Double.random(in: 0...1))
        logger.warning("\(reason); retrying in \(delay) ms")
        loop.scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }

    private func connectionClosed(_ ch: any Channel) {
        guard state.channel === ch else { return }
        let wasReady = state.ready
        if state.counter?.finishedHandshake == false { metrics?.handshake(server: false, ok: false) }
        state.closedBytesIn += state.counter?.bytesIn ?? 0
        state.closedBytesOut += state.counter?.bytesOut ?? 0
        state.channel = nil
        state.counter = nil
        state.ready = false
        state.unflushed.removeAll()
        failAll(.unavailable("connection to \(upstream.name) lost"))
        let stats = state.statsWaiters
        state.statsWaiters = [:]
        for (_, waiter) in stats { waiter.fail(UpstreamFailure.unavailable("connection to \(upstream.name) lost")) }
        state.heartbeatSent = nil
        state.freeIDs.removeAll()
        state.nextID = 1  // a new connection has nothing in flight
        if wasReady && !state.stopped { logger.warning("connection to \(upstream.name) at \(endpoint) closed") }
        scheduleReconnect(reason: "no connection to \(upstream.name) at \(endpoint)")
    }

    // MARK: - Called by UpstreamHandler on the loop

    /// The TLS handshake finished: the certificate must name the upstream node, whatever address was dialled.
    func tlsHandshakeCompleted(peerNames: [String]) -> String? {
        guard peerNames.contains(upstream.name) else {
            let shown = peerNames.isEmpty ? "no DNS name" : peerNames.map { $0.escapedForLog(limit: 64) }.joined(separator: ", ")
            return "upstream at \(endpoint) presented a certificate for \(shown), not for '\(upstream.name)'"
        }
        return nil
    }

    func handshakeSucceeded(_ ack: Hello) -> String? {
        guard ack.nodeName == upstream.name, ack.role == upstream.role.wireRole else {
            return "upstream answered as \(ack.role) '\(ack.nodeName.escapedForLog(limit: 64))', expected \(upstream.role) '\(upstream.name)'"
        }
        guard ack.fingerprint == local.fingerprint else {
            return "upstream '\(upstream.name)' runs model \(ack.fingerprint.hex.prefix(16)), this node \(local.fingerprint.hex.prefix(16))"
        }
        guard ack.protocolVersion == local.protocolVersion else {
            return "upstream '\(upstream.name)' answered in protocol version \(ack.protocolVersion), this node asked for \(local.protocolVersion)"
        }
        state.dialect = .after(version: ack.protocolVersion, names: ack.names)
        state.ready = true
        state.connections += 1
        state.handshakeBytes += (state.counter?.bytesIn ?? 0) + (state.counter?.bytesOut ?? 0)
        state.counter?.handshakeFinished(meter: metrics?.link(linkName))
        metrics?.handshake(server: false, ok: true)
        state.backoff.reset()
        state.lastProblem = nil
        logger.info("connected to \(upstream.role) '\(upstream.name)' at \(endpoint)")
        let waiters = state.readyWaiters
        state.readyWaiters = []
        for w in waiters { w.succeed(()) }
        drainQueue()
        return nil
    }

    func received(_ frame: Frame) {
        switch frame.message {
        case .result(let r):
            if let problem = check(r) {
                // A peer that lies about what it answered: the sample is not answered from it, and the
                // connection, which can no longer be trusted, is dropped (its other requests fail over).
                logger.error("upstream \(upstream.name) at \(endpoint) sent an impossible result for request \(frame.requestID): \(problem); closing")
                complete(frame.requestID, .failure(.invalidAnswer(problem)))
                state.channel?.close(promise: nil)
                return
            }
            if complete(frame.requestID, .success((r, frame.encodedSize(in: state.dialect)))) { state.freeIDs.append(frame.requestID) }
        case .stats(let links):
            if let waiter = state.statsWaiters.removeValue(forKey: frame.requestID) {
                state.freeIDs.append(frame.requestID)
                waiter.succeed(links)
            }
        case .error(let e) where frame.requestID != 0 && state.statsWaiters[frame.requestID] != nil:
            state.freeIDs.append(frame.requestID)
            state.statsWaiters.removeValue(forKey: frame.requestID)?.fail(UpstreamFailure.remote(e))
        case .error(let e) where frame.requestID != 0:
            if complete(frame.requestID, .failure(.remote(e))) { state.freeIDs.append(frame.requestID) }
        case .error(let e):
            logger.error("upstream \(upstream.name) refused the connection: \(String(describing: e).escapedForLog(limit: 512))")
        case .goodbye:
            logger.info("upstream \(upstream.name) at \(endpoint) is draining or closing an idle connection")
            state.ready = false
        default:
            logger.warning("unexpected \(frame.message.type) frame from upstream \(upstream.name)")
        }
    }

    var helloFrame: Frame { Frame(requestID: 0, message: .hello(local)) }

    /// Why a result from upstream cannot be true for this model, or nil: its exit must be one of the
    /// upstream stages' exits, under that exit's name, and its class one the model has.
    func check(_ r: InferResult) -> String? {
        Self.problem(with: r, exitNames: exitNames, classCount: classCount, firstUpstreamExit: firstUpstreamExit)
    }

    /// Why `r` cannot be an answer from upstream of a node whose next exit is `firstUpstreamExit`,
    /// for a model with `exitNames` and `classCount` classes; nil when it can.
    static func problem(with r: InferResult, exitNames: [String], classCount: Int, firstUpstreamExit: Int) -> String? {
        let exit = Int(r.exitIndex)
        guard exit >= firstUpstreamExit, exit < exitNames.count else {
            return "field exitIndex is \(exit), expected \(firstUpstreamExit)...\(exitNames.count - 1) (the exits upstream of this node)"
        }
        guard r.exitName == exitNames[exit] else {
            return "field exitName is '\(r.exitName.escapedForLog(limit: 64))', expected '\(exitNames[exit])' for exit \(exit)"
        }
        guard Int(r.predictedClass) < classCount else {
            return "field predictedClass is \(r.predictedClass), expected 0...\(classCount - 1)"
        }
        return nil
    }
}

/// The link's handler at the top of its pipeline: checks the server's certificate name once
/// TLS is up, then sends the hello and hands frames to the link. Lives on the link's loop.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame
    let link: UpstreamLink
    /// True once the server's certificate was found to name the upstream node. Until then every
    /// frame is dropped: TLS keeps delivering data while a close is under way.
    private var verified = false

    init(link: UpstreamLink) { self.link = link }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            if let problem = link.tlsHandshakeCompleted(peerNames: TLSLayer.peerNames(of: context.pipeline)) {
                link.logger.error("\(problem); closing")
                context.close(promise: nil)
                return
            }
            verified = true
            context.writeAndFlush(wrapOutboundOut(link.helloFrame), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard verified else { return }
        let frame = unwrapInboundIn(data)
        if case .helloAck(let ack) = frame.message {
            if let problem = link.handshakeSucceeded(ack) {
                link.logger.error("\(problem); closing")
                context.close(promise: nil)
            }
            return
        }
        link.received(frame)
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
