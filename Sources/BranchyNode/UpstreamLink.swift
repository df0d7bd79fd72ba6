import BranchyLink
import BranchyObservability
import BranchyTopology
import BranchyTransport
import BranchyWire
import Logging
import NIOCore
import NIOSSL

/// The connection from a node to its upstream node: one mutual-TLS connection shared by all
/// requests (matched by request id), reconnected with capped exponential backoff and jitter,
/// with a bounded in-flight window, a bounded queue behind it and a deadline per request.
/// Every request sent gets exactly one completion: a reply or an `UpstreamFailure`.
///
/// The rules live in an `UpstreamConnectionStateMachine`; this class feeds it the channel's events and carries
/// out its actions, holding the channel, promises and timers in a box bound to `loop` (call from any thread).
public final class UpstreamLink: Sendable {
    public let loop: any EventLoop
    let linkName: String
    /// The address this link dials: the upstream node's, or one of its replicas'.
    let endpoint: Endpoint
    /// How metrics and logs name the replica this link dials ("0" for an upstream of one process).
    let replicaLabel: String
    let tls: NIOSSLContext
    let logger: Logger
    let metrics: NodeMetrics?
    /// What the link dials and accepts from there (the state machine's configuration).
    let configuration: UpstreamConnectionStateMachine.Configuration

    private struct State {
        var machine: UpstreamConnectionStateMachine
        var channel: (any Channel)?
        var counter: ByteCounter?
        /// Requests the machine took, by id: their promises and deadline timers.
        var requests: [UInt64: (promise: EventLoopPromise<UpstreamReply>, timer: Scheduled<Void>)] = [:]
        /// `statsRequest`s sent and not yet answered, by id.
        var stats: [UInt64: EventLoopPromise<[LinkTotals]>] = [:]
        var readyWaiters: [EventLoopPromise<Void>] = []
    }

    private let box: NIOLoopBoundBox<State>
    /// `get`, not `_read`: Swift 6.3 at -Onone frees a `_read` yield before destroying the machine read through it.
    private var state: State {
        get { box.value }
        _modify { yield &box.value }
    }

    public init(context: NodeContext, loop: any EventLoop, logger: Logger, endpoint: Endpoint? = nil, replicaLabel: String = "0",
                metrics: NodeMetrics? = nil) throws {
        guard let up = context.upstream else { throw NodeError("node '\(context.config.name)' has no upstream") }
        guard let endpoint = endpoint ?? up.dialAddress else { throw NodeError("upstream '\(up.name)' has no address to dial") }
        (self.loop, self.endpoint, self.replicaLabel, self.metrics, self.logger) = (loop, endpoint, replicaLabel, metrics, logger)
        var hello = context.hello
        hello.names = .empty  // names travel from servers only
        self.linkName = "\(context.config.name)->\(up.name)"
        self.tls = try TLSLayer.clientContext(context.config.tls, node: context.config.name)
        // Replicas retry sooner, as their children have others meanwhile.
        configuration = .init(upstreamName: up.name, upstreamRole: up.role, endpoint: endpoint, local: hello, linkName: linkName,
                              exitNames: context.model.network.stages.map(\.exitName), classCount: context.model.spec.classes,
                              firstUpstreamExit: (context.stageIndices.last ?? -1) + 1, backoffCapMillis: up.isReplicated ? 1_000 : 5_000)
        let machine = UpstreamConnectionStateMachine(configuration: configuration, maxInFlight: context.config.maxInFlight,
                                                     deadlineMillis: context.config.deadlineMillis)
        self.box = NIOLoopBoundBox.makeBoxSendingValue(State(machine: machine), eventLoop: loop)
    }

    /// This link's totals, as a server reports them to its children. Read on `loop`.
    public var totals: LinkTotals {
        let bytes = measuredBytes
        return LinkTotals(link: linkName, connections: UInt64(state.machine.connections), handshakeBytes: state.machine.handshakeBytes,
                          bytesSent: bytes.sent, bytesReceived: bytes.received)
    }

    /// Bytes counted below TLS on all this link's connections so far, handshakes included. Read on `loop`.
    public var measuredBytes: (sent: UInt64, received: UInt64) {
        (state.machine.closedBytesOut + (state.counter?.bytesOut ?? 0), state.machine.closedBytesIn + (state.counter?.bytesIn ?? 0))
    }

    /// Asks the upstream node for the totals of its own upstream link (version 2 only); an empty
    /// list from the root. Fails when not connected, on version 1, or after `timeoutMillis`.
    public func upstreamTotals(timeoutMillis: Int64 = 2_000) -> EventLoopFuture<[LinkTotals]> {
        loop.flatSubmit {
            switch self.state.machine.statsRequested(timeoutMillis: timeoutMillis) {
            case .refused(let failure): return self.loop.makeFailedFuture(failure)
            case .accepted(let id, let connection, let actions):
                let p = self.loop.makePromise(of: [LinkTotals].self)
                self.state.stats[id] = p
                self.run(actions)
                self.loop.scheduleTask(in: .milliseconds(timeoutMillis)) { self.run(self.state.machine.statsTimedOut(id, connection: connection)) }
                return p.futureResult
            }
        }
    }

    /// Applies a reloaded node's window and deadline to requests sent from now on. On `loop`.
    func reconfigure(maxInFlight: Int, deadlineMillis: Int) {
        run(state.machine.reconfigure(maxInFlight: maxInFlight, deadlineMillis: deadlineMillis))
    }

    /// True while connected with the hello done (and not told to go away). Read on `loop`.
    var isReady: Bool { state.machine.isReady }
    /// Why the link is down (the last failed dial or lost connection), when it is. Read on `loop`.
    var lastProblem: String? { isReady ? nil : state.machine.lastProblem }
    /// Requests sent and unanswered, and queued behind the window. Read on `loop`.
    var outstanding: (inFlight: Int, queued: Int) { state.machine.outstanding }

    /// Sends a `statsRequest` every `intervalMillis` while connected (protocol version 2), one at
    /// a time; a connection that leaves one unanswered for `timeoutMillis` is closed, as the replica
    /// behind it is taken to be dead or hung (its requests fail over to other replicas). On `loop`.
    func startHeartbeat(intervalMillis: Int64, timeoutMillis: Int64) {
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(intervalMillis), delay: .milliseconds(intervalMillis)) { task in
            self.run(self.state.machine.heartbeatTimerFired(timeoutMillis: timeoutMillis), heartbeat: task)
        }
    }

    /// Starts connecting (and reconnecting whenever the connection drops).
    public func start() {
        loop.execute { self.run(self.state.machine.start()) }
    }

    /// Completes once the handshake with upstream has succeeded, or fails after `timeoutMillis`.
    public func waitUntilReady(timeoutMillis: Int64) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            if self.state.machine.isReady { return self.loop.makeSucceededVoidFuture() }
            let p = self.loop.makePromise(of: Void.self)
            self.state.readyWaiters.append(p)
            let name = self.configuration.upstreamName
            self.loop.scheduleTask(in: .milliseconds(timeoutMillis)) {
                p.fail(UpstreamFailure.unavailable("no handshake with \(name) within \(timeoutMillis) ms"))
            }
            return p.futureResult
        }
    }

    /// Sends a request upstream. The future always completes exactly once, on `loop`. Called on `loop`, the request is written at once (no hop); requests written in one turn
    /// of the loop go out in one flush.
    public func send(_ request: InferRequest) -> EventLoopFuture<UpstreamReply> {
        let promise = loop.makePromise(of: UpstreamReply.self)
        if loop.inEventLoop { enqueue(request, promise) } else { loop.execute { self.enqueue(request, promise) } }
        return promise.futureResult
    }

    /// Stops reconnecting, fails what is pending and closes the connection.
    public func stop() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            let closed = self.loop.makePromise(of: Void.self)
            let actions = self.state.machine.stop()
            self.run(actions, closing: closed)
            if !actions.contains(.close) { closed.succeed(()) }
            return closed.futureResult
        }.recover { _ in }
    }

    private func enqueue(_ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>) {
        switch state.machine.requestSubmitted(request) {
        case .refused(let failure): promise.fail(failure)
        case .accepted(let id, let due, let actions):
            let timer = loop.scheduleTask(deadline: due) { [weak self] in if let self { self.run(self.state.machine.deadlineFired(id)) } }
            state.requests[id] = (promise, timer)
            run(actions)
        }
    }

    /// Flushes what this turn of the loop wrote, and tells the machine what the flush put on the socket.
    private func flushWrites() {
        let ids = state.machine.flushTimerFired()
        guard let channel = state.channel, !ids.isEmpty else { return }
        let before = state.counter?.bytesOut ?? 0
        channel.flush()
        state.machine.flushed(ids, measuredBytes: Int((state.counter?.bytesOut ?? 0) &- before))
    }

    /// Carries out the machine's actions in order. `closing` completes with the close, `heartbeat`
    /// is the timer a `cancelHeartbeat` stops.
    private func run(_ actions: [UpstreamConnectionStateMachine.Action], closing: EventLoopPromise<Void>? = nil, heartbeat: RepeatedTask? = nil) {
        for action in actions {
            switch action {
            case .connect: connect()
            case .scheduleReconnect(let ms): loop.scheduleTask(in: .milliseconds(Int64(ms))) { self.run(self.state.machine.reconnectTimerFired()) }
            case .writeAndFlush(let frame): state.channel?.writeAndFlush(frame, promise: nil)
            case .write(let frame): state.channel?.write(frame, promise: nil)
            case .scheduleFlush: loop.execute { self.flushWrites() }
            case .close: if let channel = state.channel { channel.close(promise: closing) } else { closing?.succeed(()) }
            case .succeed(let id, let reply, let nanos):
                metrics?.upstreamAnswered(link: linkName, nanos: nanos)
                takeRequest(id)?.succeed(reply)
            case .fail(let ids, let failure): for id in ids { takeRequest(id)?.fail(failure) }
            case .answerStats(let id, let links): state.stats.removeValue(forKey: id)?.succeed(links)
            case .failStats(let ids, let failure): for id in ids { state.stats.removeValue(forKey: id)?.fail(failure) }
            case .succeedReadyWaiters:
                let waiters = state.readyWaiters
                state.readyWaiters = []
                for w in waiters { w.succeed(()) }
            case .log(let level, let message): logger.log(level: level, "\(message)")
            case .handshakeSucceeded:
                state.counter?.handshakeFinished(meter: metrics?.link(linkName))
                metrics?.handshake(server: false, ok: true)
            case .handshakeFailed: metrics?.handshake(server: false, ok: false)
            case .sendHeartbeat(let ms): upstreamTotals(timeoutMillis: ms).whenSuccess { _ in self.state.machine.heartbeatAnswered() }
            case .cancelHeartbeat: heartbeat?.cancel()
            case .drainQueue: while let step = state.machine.transmitNextQueued() { run(step) }
            case .releaseID(let id): state.machine.releaseID(id)
            }
        }
    }

    /// The promise of request `id`, its deadline timer cancelled.
    private func takeRequest(_ id: UInt64) -> EventLoopPromise<UpstreamReply>? {
        guard let request = state.requests.removeValue(forKey: id) else { return nil }
        request.timer.cancel()
        return request.promise
    }

    private func connect() {
        UpstreamHandler.dial(endpoint, tls: tls, link: self).whenComplete { result in
            switch result {
            case .success(let channel):
                self.state.channel = channel
                self.state.counter = try? channel.pipeline.syncOperations.handler(type: ByteCounter.self)
                self.run(self.state.machine.connected())
                channel.closeFuture.whenComplete { _ in
                    guard self.state.channel === channel else { return }
                    let counter = self.state.counter
                    (self.state.channel, self.state.counter) = (nil, nil)
                    self.run(self.state.machine.connectionClosed(bytesIn: counter?.bytesIn ?? 0, bytesOut: counter?.bytesOut ?? 0))
                }
            case .failure(let error):
                self.run(self.state.machine.connectFailed(error))
            }
        }
    }

    // MARK: - Called by UpstreamHandler on the loop

    /// The TLS handshake on `channel` finished; false when the certificate names another node and the connection closes.
    func tlsHandshakeCompleted(peerNames: [String], on channel: any Channel) -> Bool {
        guard state.channel === channel else { return true }
        let actions = state.machine.tlsHandshakeCompleted(peerNames: peerNames)
        run(actions)
        return !actions.contains(.close)
    }

    /// A frame from upstream on `channel`.
    func received(_ frame: Frame, on channel: any Channel) {
        guard state.channel === channel else { return }
        guard case .helloAck(let ack) = frame.message else { return run(state.machine.frameReceived(frame)) }
        run(state.machine.helloAckReceived(ack, bytesCounted: (state.counter?.bytesIn ?? 0) + (state.counter?.bytesOut ?? 0)))
    }
}
