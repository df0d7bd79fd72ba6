import BranchyTensor
import BranchyTopology
import BranchyWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

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

    public var description: String {
        switch self {
        case .unavailable(let why): return "upstream unavailable: \(why)"
        case .deadline(let ms): return "upstream deadline of \(ms) ms exceeded"
        case .remote(let e): return "upstream error: \(e)"
        case .overloaded(let n): return "upstream link overloaded (\(n) requests queued)"
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
/// All state lives on `loop`; public methods may be called from any thread.
public final class UpstreamLink: @unchecked Sendable {
    public let loop: EventLoop
    let local: Hello
    let upstream: NodeConfig
    let linkName: String
    let tls: NIOSSLContext
    let maxInFlight: Int
    let maxQueued: Int
    let deadlineMillis: Int
    let logger: Logger

    private struct Pending {
        var promise: EventLoopPromise<UpstreamReply>
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

    private var channel: Channel?
    private var counter: ByteCounter?
    private var ready = false
    private var stopped = false
    private var pending: [UInt64: Pending] = [:]
    private var waiting: [UInt64: Queued] = [:]
    /// Ids of `waiting` requests in arrival order (ids already expired are skipped).
    private var queue = CircularBuffer<UInt64>()
    private var nextID: UInt64 = 1
    private var backoff = Backoff()
    private var readyWaiters: [EventLoopPromise<Void>] = []
    /// TLS handshake plus hello/ack bytes of every connection made, both directions.
    public private(set) var handshakeBytes: UInt64 = 0
    /// Number of successful handshakes (1 + reconnects).
    public private(set) var connections = 0
    private var closedBytesIn: UInt64 = 0
    private var closedBytesOut: UInt64 = 0

    /// Bytes counted below TLS on every connection of this link so far (handshakes included): sent, received.
    /// Read on `loop`.
    public var measuredBytes: (sent: UInt64, received: UInt64) {
        (closedBytesOut + (counter?.bytesOut ?? 0), closedBytesIn + (counter?.bytesIn ?? 0))
    }

    public init(context: NodeContext, loop: EventLoop, logger: Logger) throws {
        guard let up = context.upstream else { throw NodeError("node '\(context.config.name)' has no upstream") }
        self.loop = loop
        self.local = context.hello
        self.upstream = up
        self.linkName = "\(context.config.name)->\(up.name)"
        self.tls = try TLSLayer.clientContext(context.config.tls, node: context.config.name)
        self.maxInFlight = context.config.maxInFlight
        self.maxQueued = context.config.maxInFlight * 16
        self.deadlineMillis = context.config.deadlineMillis
        self.logger = logger
    }

    /// Starts connecting (and reconnecting whenever the connection drops).
    public func start() {
        loop.execute { self.connect() }
    }

    /// Completes once the handshake with upstream has succeeded, or fails after `timeoutMillis`.
    public func waitUntilReady(timeoutMillis: Int64) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            if self.ready { return self.loop.makeSucceededVoidFuture() }
            let p = self.loop.makePromise(of: Void.self)
            self.readyWaiters.append(p)
            self.loop.scheduleTask(in: .milliseconds(timeoutMillis)) {
                p.fail(UpstreamFailure.unavailable("no handshake with \(self.upstream.name) within \(timeoutMillis) ms"))
            }
            return p.futureResult
        }
    }

    /// Sends a request upstream. The future always completes exactly once.
    public func send(_ request: InferRequest) -> EventLoopFuture<UpstreamReply> {
        let promise = loop.makePromise(of: UpstreamReply.self)
        loop.execute { self.enqueue(request, promise) }
        return promise.futureResult
    }

    /// Stops reconnecting, fails what is pending and closes the connection.
    public func stop() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.stopped = true
            self.failAll(.unavailable("link stopped"))
            return self.channel?.close() ?? self.loop.makeSucceededVoidFuture()
        }.recover { _ in }
    }

    // MARK: - On the loop

    private func enqueue(_ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>) {
        guard ready, let channel, !stopped else {
            promise.fail(UpstreamFailure.unavailable(stopped ? "link stopped" : "not connected to \(upstream.name)"))
            return
        }
        guard pending.count < maxInFlight || waiting.count < maxQueued else {
            promise.fail(UpstreamFailure.overloaded(waiting.count))
            return
        }
        let id = nextID
        nextID += 1
        // The tighter of this link's deadline and what the request still has left; it runs from now,
        // queueing included.
        let ms = request.deadlineMillis > 0 ? min(deadlineMillis, Int(request.deadlineMillis)) : deadlineMillis
        let due = NIODeadline.now() + .milliseconds(Int64(ms))
        let timer: Scheduled<Void> = loop.scheduleTask(deadline: due) { [weak self] in self?.expire(id, ms) }
        if pending.count >= maxInFlight {
            waiting[id] = Queued(request: request, promise: promise, due: due, timer: timer)
            queue.append(id)
            if queue.count > 2 * maxQueued {  // drop ids that expired while queued
                queue = CircularBuffer(queue.filter { waiting[$0] != nil })
            }
            return
        }
        transmit(id: id, request, promise, due: due, timer: timer, on: channel)
    }

    private func transmit(id: UInt64, _ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>,
                          due: NIODeadline, timer: Scheduled<Void>, on channel: Channel) {
        var req = request
        // What is left of the deadline travels with the request, so the next hop gives up in time.
        req.deadlineMillis = UInt32(max(1, (due - NIODeadline.now()).nanoseconds / 1_000_000))
        let frame = Frame(requestID: id, message: .infer(req))
        do {
            // A frame the encoder would refuse (say, features that overflowed to infinity) must fail
            // this request alone, not the encoder and with it every request on the connection.
            try frame.validate()
        } catch {
            timer.cancel()
            promise.fail(UpstreamFailure.remote(ErrorFrame(code: .badTensor, message: "features not sendable: \(error)")))
            return
        }
        let before = counter?.bytesOut ?? 0
        channel.writeAndFlush(frame, promise: nil)
        let tlsBytes = Int((counter?.bytesOut ?? 0) - before)
        pending[id] = Pending(promise: promise, requestFrameBytes: frame.encodedSize, requestTLSBytes: tlsBytes, timer: timer)
    }

    /// The deadline of request `id` passed, in flight or still queued.
    private func expire(_ id: UInt64, _ ms: Int) {
        if let q = waiting.removeValue(forKey: id) {
            q.promise.fail(UpstreamFailure.deadline(ms))
            return
        }
        complete(id, .failure(.deadline(ms)))
    }

    private func complete(_ id: UInt64, _ outcome: Result<(InferResult, Int), UpstreamFailure>) {
        guard let p = pending.removeValue(forKey: id) else { return }  // late or unknown: already answered
        p.timer.cancel()
        switch outcome {
        case .success(let (result, responseFrameBytes)):
            let cost = HopCost(link: linkName, requestFrameBytes: UInt64(p.requestFrameBytes), responseFrameBytes: UInt64(responseFrameBytes),
                               requestTLSBytes: UInt64(p.requestTLSBytes),
                               responseTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: responseFrameBytes)))
            p.promise.succeed(UpstreamReply(result: result, cost: cost))
        case .failure(let f):
            p.promise.fail(f)
        }
        drainQueue()
    }

    private func drainQueue() {
        guard let channel, ready else { return }
        while pending.count < maxInFlight, let id = queue.popFirst() {
            guard let q = waiting.removeValue(forKey: id) else { continue }  // expired while queued
            transmit(id: id, q.request, q.promise, due: q.due, timer: q.timer, on: channel)
        }
    }

    private func failAll(_ f: UpstreamFailure) {
        let ps = pending
        pending = [:]
        for (_, p) in ps { p.timer.cancel(); p.promise.fail(f) }
        let ws = waiting
        waiting = [:]
        queue.removeAll()
        for (_, q) in ws { q.timer.cancel(); q.promise.fail(f) }
    }

    private func connect() {
        guard !stopped, let endpoint = upstream.listen else { return }
        let counter = ByteCounter()
        let handler = UpstreamHandler(link: self)
        let tls = self.tls, serverName = upstream.name
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(3))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ssl = try NIOSSLClientHandler(context: tls, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandlers([
                        counter, ssl,
                        ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                        handler,
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                switch result {
                case .success(let ch):
                    self.channel = ch
                    self.counter = counter
                    ch.closeFuture.whenComplete { _ in self.connectionClosed(ch) }
                case .failure(let error):
                    self.scheduleReconnect(reason: "connect to \(self.upstream.name) at \(endpoint) failed: \(error)")
                }
            }
    }

    private func scheduleReconnect(reason: String) {
        guard !stopped else { return }
        let delay = backoff.next(random: Double.random(in: 0...1))
        logger.warning("\(reason); retrying in \(delay) ms")
        loop.scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }

    private func connectionClosed(_ ch: Channel) {
        guard channel === ch else { return }
        let wasReady = ready
        closedBytesIn += counter?.bytesIn ?? 0
        closedBytesOut += counter?.bytesOut ?? 0
        channel = nil
        counter = nil
        ready = false
        failAll(.unavailable("connection to \(upstream.name) lost"))
        if wasReady && !stopped { logger.warning("connection to \(upstream.name) closed") }
        scheduleReconnect(reason: "no connection to \(upstream.name)")
    }

    // MARK: - Called by UpstreamHandler on the loop

    func handshakeSucceeded(_ ack: Hello) -> String? {
        guard ack.nodeName == upstream.name, ack.role == upstream.role.wireRole else {
            return "upstream answered as \(ack.role) '\(ack.nodeName)', expected \(upstream.role) '\(upstream.name)'"
        }
        guard ack.fingerprint == local.fingerprint else {
            return "upstream '\(ack.nodeName)' runs model \(ack.fingerprint.hex.prefix(16)), this node \(local.fingerprint.hex.prefix(16))"
        }
        ready = true
        connections += 1
        handshakeBytes += (counter?.bytesIn ?? 0) + (counter?.bytesOut ?? 0)
        backoff.reset()
        logger.info("connected to \(upstream.role) '\(upstream.name)' at \(upstream.listen.map { "\($0)" } ?? "?")")
        for w in readyWaiters { w.succeed(()) }
        readyWaiters = []
        drainQueue()
        return nil
    }

    func received(_ frame: Frame) {
        switch frame.message {
        case .result(let r):
            complete(frame.requestID, .success((r, frame.encodedSize)))
        case .error(let e) where frame.requestID != 0:
            complete(frame.requestID, .failure(.remote(e)))
        case .error(let e):
            logger.error("upstream \(upstream.name) refused the connection: \(e)")
        case .goodbye:
            logger.info("upstream \(upstream.name) is draining")
            ready = false
        default:
            logger.warning("unexpected \(frame.message) from upstream \(upstream.name)")
        }
    }

    var helloFrame: Frame { Frame(requestID: 0, message: .hello(local)) }
}

/// The link's handler at the top of its pipeline: sends the hello, hands frames to the link.
final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame
    let link: UpstreamLink

    init(link: UpstreamLink) { self.link = link }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(link.helloFrame), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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
        link.logger.warning("upstream connection error: \(error)")
        context.close(promise: nil)
    }
}
