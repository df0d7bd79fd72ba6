import BranchyTransport
import BranchyWire
import Dispatch
import Logging
import NIOCore
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// One accepted connection: drives a `ServerConnectionStateMachine` with the frames that
/// arrive and carries out its actions. A peer's certificate must name the node its hello
/// claims; the connection must finish TLS and hello within the handshake timeout, and is
/// closed after the idle timeout with nothing in flight. Lives on its channel's event loop, which
/// is the server's loop (`InferenceServer.loop`): requests go to the server's batcher directly,
/// and answers are written as they come and flushed once per turn of the loop.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    /// Sent through the pipeline (from any thread) to make the connection drain.
    struct Drain: Sendable {}

    /// How long a connection that is being closed after a last frame may wait for that frame to
    /// be written (a peer that reads nothing would otherwise keep it open).
    static let closeGrace: TimeAmount = .seconds(2)
    /// Bytes per second a frame that arrives in pieces must at least average. It must be complete
    /// within the handshake timeout or `size / minimumFrameRate` seconds, whichever is longer, so
    /// a peer cannot pin the input budget by trickling bytes.
    static let minimumFrameRate = 32 * 1024
    /// Most bytes of answers (results, stats, errors) that may wait to be written to a peer that does
    /// not read; past it the connection is closed. Reading pauses long before, at the write buffer's
    /// high-water mark, so this bounds what frames already received can still add.
    static let maxUnwrittenBytes = 4 << 20
    /// Answers written but not flushed past this many bytes are flushed at once rather than at the
    /// end of the loop's turn: the event loop reads many times per turn, and only a flush lets the
    /// channel's writability (and so the pause in reading) follow a peer that does not read.
    static let flushThreshold = 64 << 10

    private let server: InferenceServer
    private let id: UInt64
    private let reservation: InputReservation
    private var machine: ServerConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var handshakeTimer: Scheduled<Void>?
    private var forcedClose: Scheduled<Void>?
    private var frameTimer: Scheduled<Void>?
    /// True once the hello was accepted (the handshake timer no longer applies).
    private var authenticated = false
    /// The peer's address ("ip:port"); the key for rate-limited warnings until the hello.
    private var address = "unknown peer"
    /// How logs name the peer: its address, then its identity.
    private var label = "unknown peer"
    /// True while a flush of written answers is scheduled.
    private var flushScheduled = false
    /// Set while the connection is not writable: closes it if the peer keeps not reading.
    private var stallTimer: Scheduled<Void>?
    /// When the frame in progress began to arrive.
    private var frameStart = NIODeadline.now()
    /// Bytes of answers written since the last flush (their frames' sizes).
    private var unflushed = 0

    /// Whether the connection is still there to take answers.
    var isOpen: Bool { context != nil }

    init(server: InferenceServer, id: UInt64, reservation: InputReservation, machine: ServerConnectionStateMachine) {
        self.server = server
        self.id = id
        self.reservation = reservation
        self.machine = machine
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        address = context.channel.remoteAddress.map { "\($0)" } ?? "unknown peer"
        label = address
        let timeout = server.limits.handshakeTimeoutMillis
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(timeout))) { [self] in
            guard !authenticated else { return }
            _ = machine.handshakeTimeoutPassed()
            server.log(.info, from: sourceKey, "\(label): no TLS handshake and hello within \(timeout) ms; closing")
            self.context?.close(promise: nil)
        }
        reservation.onFrameProgress = { [weak self] bytes in self?.frameProgress(bytes: bytes) }
    }

    /// A frame began to arrive in pieces (`bytes` nil), or its size became known: it must be
    /// complete within the handshake timeout or `bytes / minimumFrameRate` seconds, whichever is
    /// longer, counted from its first byte.
    private func frameProgress(bytes: Int?) {
        guard let context else { return }
        if bytes == nil { frameStart = .now() }
        frameTimer?.cancel()
        let generation = reservation.generation
        let byRate = TimeAmount.milliseconds(Int64(bytes ?? 0) * 1000 / Int64(Self.minimumFrameRate))
        let allowed = max(TimeAmount.milliseconds(Int64(server.limits.handshakeTimeoutMillis)), byRate)
        let size = bytes.map { "a frame of \($0) bytes" } ?? "a frame header"
        frameTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: frameStart + allowed) { [self] in
            guard let context = self.context, reservation.inProgress, reservation.generation == generation else { return }
            perform(machine.refuse(.limitReached,
                "\(size) was not complete within \(allowed.nanoseconds / 1_000_000) ms of its first byte"), context: context)
        }
    }

    /// After a frame that ends the connection: close once it is written, or after a grace period at most.
    private func closeSoon(_ context: ChannelHandlerContext, after write: EventLoopFuture<Void>) {
        write.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        forcedClose = context.eventLoop.assumeIsolated().scheduleTask(in: Self.closeGrace) { [self] in
            // Still not written: the peer does not read, so it would not read a TLS close_notify either.
            if let context = self.context { closeAtOnce(context) }
        }
    }

    /// A peer that does not read what it is sent: stop reading from it until it does, so answers
    /// and errors cannot pile up in memory.
    /// If it still reads nothing for the idle timeout, close the connection.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        context.channel.setOption(.autoRead, value: writable).whenFailure { _ in }
        if writable {
            stallTimer?.cancel()
            stallTimer = nil
            context.read()
        } else if stallTimer == nil {
            let timeout = server.limits.idleTimeoutMillis
            stallTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(timeout))) { [self] in
                stallTimer = nil
                guard let context = self.context, !context.channel.isWritable else { return }
                server.log(.warning, from: sourceKey, "\(label): has not read its answers for \(timeout) ms (the idle timeout); closing")
                closeAtOnce(context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Writes `frame` and schedules one flush for this turn of the loop (or flushes at once past
    /// ``flushThreshold``); closes the connection instead when more than ``maxUnwrittenBytes`` of
    /// answers wait for a peer that does not read.
    private func writeAnswer(_ frame: Frame, context: ChannelHandlerContext) {
        guard !closingAtOnce else { return }
        // While the channel is writable, what waits is below its high-water mark plus at most one
        // flush threshold: only a channel that is not needs its buffered bytes counted.
        let buffered = context.channel.isWritable ? 0 : (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if buffered + unflushed > Self.maxUnwrittenBytes {
            server.log(.warning, from: sourceKey,
                       "\(label): \(buffered + unflushed) bytes of answers unread, more than \(Self.maxUnwrittenBytes); closing")
            closeAtOnce(context)
            return
        }
        context.write(wrapOutboundOut(frame), promise: nil)
        unflushed += frame.encodedSize
        if unflushed >= Self.flushThreshold {
            unflushed = 0
            context.flush()
            return
        }
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute { [self] in
                flushScheduled = false
                unflushed = 0
                self.context?.flush()
            }
        }
    }

    /// True once the connection is being cut off: nothing more is written to it.
    private var closingAtOnce = false

    /// Closes the connection below TLS (no `close_notify` exchange, which would keep reading from
    /// a flooding peer while it waits), and stops reading from it meanwhile.
    private func closeAtOnce(_ context: ChannelHandlerContext) {
        guard !closingAtOnce else { return }
        closingAtOnce = true
        context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
        if let counter = try? context.pipeline.syncOperations.handler(type: ByteCounter.self) {
            counter.closeBelowTLS()
        } else {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !authenticated { server.metrics?.handshake(server: true, ok: false) }
        handshakeTimer?.cancel()
        forcedClose?.cancel()
        frameTimer?.cancel()
        stallTimer?.cancel()
        reservation.release()
        self.context = nil
        server.connections.remove(id)
    }

    /// Rate-limiting key: the peer's host, so one misbehaving machine is limited as a whole.
    private var sourceKey: String {
        if let peer = machine.peer { return "peer:\(peer.name)" }
        return "addr:" + (context?.channel.remoteAddress?.ipAddress ?? address)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closingAtOnce else { return }  // frames already read from a peer being cut off
        let frame = unwrapInboundIn(data)
        if case .hello(let hello) = frame.message, case .awaitingHello = machine.state,
           !TLSLayer.peer(of: context.pipeline, isNamed: hello.nodeName) {
            let name = hello.nodeName.escapedForLog(limit: 64)
            server.log(.warning, from: sourceKey, "\(label): certificate does not name '\(name)'; refusing")
            perform(machine.refuse(.unknownNode, "the TLS certificate does not belong to node '\(name)'"), context: context)
            return
        }
        var action = machine.receivedFrame(frame)
        if case .sendHelloAck = action, let peer = machine.peer {
            if server.connections.authenticate(id, as: peer.name) {
                authenticated = true
                handshakeTimer?.cancel()
                handshakeTimer = nil
                reservation.peer = peer.name
                label = "\(peer)"
                server.logger.info("\(peer) connected from \(address)")
            } else {
                action = machine.refuse(.limitReached,
                    "node '\(peer.name)' already holds \(server.connections.maxPerPeer) connections, the most allowed per peer")
            }
        }
        if case .forwardRequest(let requestID) = action, case .infer(let request) = frame.message {
            if machine.inFlightCount == 1 { server.connections.setBusy(id, true) }
            server.metrics?.inFlight.increment()
            if let refusal = server.refusal(of: request) {
                respond(requestID, .error(refusal), arrival: DispatchTime.now().uptimeNanoseconds)
            } else {
                server.batcher.submit(BatchItem(connection: self, requestID: requestID, request: request,
                                                arrival: DispatchTime.now().uptimeNanoseconds))
            }
            return
        }
        perform(action, context: context)
        if case .sendHelloAck = action, let peer = machine.peer, let metrics = server.metrics {
            // The acknowledgement is written: everything counted so far was this link's handshake.
            let counter = try? context.pipeline.syncOperations.handler(type: ByteCounter.self)
            counter?.handshakeFinished(meter: metrics.link("\(peer.name)->\(server.context.config.name)"))
            metrics.handshake(server: true, ok: true)
        }
    }

    /// Writes the answer to request `requestID` that arrived at `arrival` (uptime nanoseconds); it
    /// is flushed with the others of this turn of the loop.
    func respond(_ requestID: UInt64, _ message: Frame.Message, arrival: UInt64) {
        if let metrics = server.metrics {
            metrics.inFlight.decrement()
            metrics.answered(message, nanos: DispatchTime.now().uptimeNanoseconds &- arrival)
        }
        guard let context else { return }  // connection gone: the request is abandoned
        var frame = Frame(requestID: requestID, message: message)
        do {
            try frame.validate()
        } catch {
            // An answer the encoder refuses (e.g. a non-finite confidence) would fail the encoder for
            // good and silently end the connection: answer with an error instead.
            frame = Frame(requestID: requestID, message: .error(ErrorFrame(code: .internalError, message: "the answer cannot be sent: \(error)")))
        }
        writeAnswer(frame, context: context)
        perform(machine.sentResponse(requestID: requestID), context: context)
        if machine.inFlightCount == 0 { server.connections.setBusy(id, false) }
    }

    private func perform(_ action: ServerConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .forwardRequest, .abandonRequests:
            break
        case .sendHelloAck(let hello):
            context.writeAndFlush(wrapOutboundOut(Frame(requestID: 0, message: .helloAck(hello))), promise: nil)
        case .sendError(let requestID, let error, let close):
            if requestID == 0 || close { server.log(.warning, from: sourceKey, "\(label): \(error)") }
            if close {
                closeSoon(context, after: context.writeAndFlush(wrapOutboundOut(Frame(requestID: requestID, message: .error(error)))))
            } else {
                writeAnswer(Frame(requestID: requestID, message: .error(error)), context: context)
            }
        case .sendGoodbye(let thenClose):
            let done = context.writeAndFlush(wrapOutboundOut(Frame(requestID: 0, message: .goodbye)))
            if thenClose { closeSoon(context, after: done) }
        case .close:
            context.close(promise: nil)
        case .sendStats(let requestID):
            writeAnswer(Frame(requestID: requestID, message: .stats(server.upstreamTotals)), context: context)
            perform(machine.sentResponse(requestID: requestID), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is Drain:
            perform(machine.beginDrain(), context: context)
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            let action = machine.idleTimeoutPassed()
            if action != .none {
                server.logger.debug("\(label): idle for \(server.limits.idleTimeoutMillis) ms; closing")
            }
            perform(action, context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .abandonRequests(let ids) = machine.connectionClosed() {
            server.log(.warning, from: sourceKey, "\(label) went away with \(ids.count) requests unanswered")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case let wire as WireError:
            perform(machine.decodingFailed(wire), context: context)
            return
        case let budget as InputBudget.Exceeded:
            perform(machine.refuse(.limitReached, budget.description), context: context)
            return
        case ByteToMessageDecoderError.leftoverDataWhenDone:
            server.log(.warning, from: sourceKey, "\(label): connection closed in the middle of a frame")
        case NIOSSLError.uncleanShutdown:
            // A peer that closes without close_notify: routine, not worth a warning.
            server.logger.debug("\(label): closed without TLS close_notify")
        case is NIOSSLError, is BoringSSLError:
            server.log(.warning, from: sourceKey, "\(label): TLS failure: \(error)")
        case let io as IOError where io.errnoCode == ECONNRESET || io.errnoCode == EPIPE:
            server.logger.debug("\(label): \(error)")
        default:
            server.log(.warning, from: sourceKey, "\(label): \(error)")
        }
        context.close(promise: nil)
    }
}
