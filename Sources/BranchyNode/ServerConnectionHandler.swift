import BranchyWire
import Logging
import NIOCore
import NIOSSL

/// One accepted connection: drives a `ServerConnectionStateMachine` with the frames that
/// arrive and carries out its actions. A peer's certificate must name the node its hello claims.
final class ServerConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let server: InferenceServer
    private var machine: ServerConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var peerDescription = "unknown peer"

    init(server: InferenceServer, machine: ServerConnectionStateMachine) {
        self.server = server
        self.machine = machine
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peerDescription = context.channel.remoteAddress.map { "\($0)" } ?? "unknown peer"
        server.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        server.unregister(self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .hello(let hello) = frame.message, case .awaitingHello = machine.state,
           !TLSLayer.peer(of: context.pipeline, isNamed: hello.nodeName) {
            server.logger.warning("\(peerDescription): certificate does not name '\(hello.nodeName)'; refusing")
            perform(.sendError(requestID: 0, ErrorFrame(code: .unknownNode,
                message: "the TLS certificate does not belong to node '\(hello.nodeName)'"), close: true), context: context)
            _ = machine.connectionClosed()
            return
        }
        let action = machine.receivedFrame(frame)
        if case .sendHelloAck = action, let peer = machine.peer {
            peerDescription = "\(peer)"
            server.logger.info("\(peer) connected")
        }
        if case .forwardRequest(let id) = action, case .infer(let request) = frame.message {
            let loop = context.eventLoop
            server.process(request, on: loop).whenComplete { result in
                let message: Frame.Message
                switch result {
                case .success(let m): message = m
                case .failure(let e): message = .error(ErrorFrame(code: .internalError, message: "\(e)"))
                }
                self.respond(id, message)
            }
            return
        }
        perform(action, context: context)
    }

    private func respond(_ id: UInt64, _ message: Frame.Message) {
        guard let context else { return }  // connection gone: the request is abandoned
        var frame = Frame(requestID: id, message: message)
        do {
            try frame.validate()
        } catch {
            // An answer the encoder refuses (e.g. a non-finite confidence from features that overflow the
            // stage) would fail the encoder for good and silently end the connection: answer with an error.
            frame = Frame(requestID: id, message: .error(ErrorFrame(code: .internalError, message: "the answer cannot be sent: \(error)")))
        }
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        perform(machine.sentResponse(requestID: id), context: context)
    }

    private func perform(_ action: ServerConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .forwardRequest, .abandonRequests:
            break
        case .sendHelloAck(let hello):
            context.writeAndFlush(wrapOutboundOut(Frame(requestID: 0, message: .helloAck(hello))), promise: nil)
        case .sendError(let id, let error, let close):
            if id == 0 || close { server.logger.warning("\(peerDescription): \(error)") }
            let done = context.writeAndFlush(wrapOutboundOut(Frame(requestID: id, message: .error(error))))
            if close { done.whenComplete { _ in context.close(promise: nil) } }
        case .sendGoodbye(let thenClose):
            let done = context.writeAndFlush(wrapOutboundOut(Frame(requestID: 0, message: .goodbye)))
            if thenClose { done.whenComplete { _ in context.close(promise: nil) } }
        case .close:
            context.close(promise: nil)
        }
    }

    func beginDrain() {
        guard let context else { return }
        context.eventLoop.execute {
            self.perform(self.machine.beginDrain(), context: context)
        }
    }

    func forceClose() {
        context?.eventLoop.execute { self.context?.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .abandonRequests(let ids) = machine.connectionClosed() {
            server.logger.warning("\(peerDescription) went away with \(ids.count) requests unanswered")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let wire = error as? WireError {
            perform(machine.decodingFailed(wire), context: context)
            return
        }
        if let decoder = error as? ByteToMessageDecoderError, case .leftoverDataWhenDone = decoder {
            server.logger.warning("\(peerDescription): connection closed in the middle of a frame")
        } else if error is NIOSSLError || error is BoringSSLError {
            server.logger.warning("\(peerDescription): TLS failure: \(error)")
        } else {
            server.logger.warning("\(peerDescription): \(error)")
        }
        context.close(promise: nil)
    }
}
