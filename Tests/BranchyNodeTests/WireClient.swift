@testable import BranchyNode
import BranchyTopology
import BranchyTransport
import BranchyWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// A client that writes raw bytes (well-formed frames or not) to a node and records everything
/// that comes back: the frames it can parse, whether the connection closed, and any error.
final class WireClient: @unchecked Sendable {
    struct State {
        var received = ByteBuffer()
        var rawBytes: [UInt8] = []
        var frames: [Frame] = []
        var consumed = 0
        var parseError: Error?
        var errors: [Error] = []
        var closed = false
    }

    let channel: Channel
    let state: NIOLockedValueBox<State>

    private init(channel: Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    /// The TLS identity a client presents: `cert`/`key` nil means no certificate at all.
    struct Identity {
        var ca: URL
        var cert: URL?
        var key: URL?

        static func node(_ name: String, in folder: URL, ca: URL? = nil) -> Identity {
            Identity(ca: ca ?? folder.appendingPathComponent("ca.pem"),
                     cert: folder.appendingPathComponent("\(name).pem"), key: folder.appendingPathComponent("\(name)-key.pem"))
        }
    }

    /// Connects to 127.0.0.1:`port`, over TLS as `identity` (expecting the server to be `serverName`),
    /// or in plain TCP when `identity` is nil.
    static func connect(port: Int, group: EventLoopGroup, identity: Identity?, serverName: String = "edge") async throws -> WireClient {
        let tls: NIOSSLContext?
        if let identity {
            var config = TLSConfiguration.makeClientConfiguration()
            config.minimumTLSVersion = .tlsv13
            config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(identity.ca.path))
            config.certificateVerification = .fullVerification
            if let cert = identity.cert, let key = identity.key {
                config.certificateChain = try NIOSSLCertificate.fromPEMFile(cert.path).map { .certificate($0) }
                config.privateKey = .privateKey(try NIOSSLPrivateKey(file: key.path, format: .pem))
            }
            tls = try NIOSSLContext(configuration: config)
        } else {
            tls = nil
        }
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(Recorder(state: state))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return WireClient(channel: channel, state: state)
    }

    /// Writes bytes as they are. A write on a connection the server already closed is not an error here.
    func send(_ bytes: ByteBuffer) async {
        try? await channel.writeAndFlush(bytes).get()
    }

    /// Writes frames as they are (not validated, so also frames a conforming sender would refuse).
    func send(_ frames: Frame...) async {
        var buffer = ByteBuffer()
        for f in frames { buffer.writeFrame(f) }
        await send(buffer)
    }

    /// The next frame not yet returned, or nil when the connection closed (or `seconds` passed) without one.
    func nextFrame(within seconds: Double = 5) async -> Frame? {
        _ = await eventually(within: seconds) {
            state.withLockedValue { $0.frames.count > $0.consumed || $0.closed || $0.parseError != nil }
        }
        return state.withLockedValue { s -> Frame? in
            guard s.frames.count > s.consumed else { return nil }
            s.consumed += 1
            return s.frames[s.consumed - 1]
        }
    }

    /// Waits for the connection to close; returns whether it did within `seconds`.
    func closed(within seconds: Double = 5) async -> Bool {
        await eventually(within: seconds) { state.withLockedValue { $0.closed } }
    }

    var frames: [Frame] { state.withLockedValue { $0.frames } }
    var rawBytes: [UInt8] { state.withLockedValue { $0.rawBytes } }
    var errors: [Error] { state.withLockedValue { $0.errors } }
    var parseError: Error? { state.withLockedValue { $0.parseError } }

    func close() async {
        try? await channel.close().get()
    }

    /// Sends `hello` and returns the answer.
    func hello(_ hello: Hello) async -> Frame? {
        await send(Frame(requestID: 0, message: .hello(hello)))
        return await nextFrame()
    }

    private final class Recorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            state.withLockedValue { s in
                s.rawBytes += bytes.readableBytesView
                s.received.writeBuffer(&bytes)
                guard s.parseError == nil else { return }
                do {
                    while let frame = try s.received.readFrame() { s.frames.append(frame) }
                } catch {
                    s.parseError = error
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            state.withLockedValue { $0.errors.append(error) }
            context.close(promise: nil)
        }
    }
}

/// A hand-written node server: mutual TLS with a node's certificate and the frame codec, and a
/// `respond` function in place of the real logic (a cloud that never answers, an edge that lies...).
final class FakeServer: @unchecked Sendable {
    let channel: Channel
    /// Every frame received, from all connections.
    let received: NIOLockedValueBox<[Frame]>

    /// Serves at `listen` (default: the node's own address) with the node's certificate.
    static func start(context: NodeContext, group: EventLoopGroup, listen: Endpoint? = nil,
                      respond: @escaping @Sendable (Frame) -> [Frame]) async throws -> FakeServer {
        let tls = try TLSLayer.serverContext(context.config.tls, node: context.config.name)
        let box = NIOLockedValueBox<[Frame]>([])
        let endpoint = listen ?? context.config.listen!
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOSSLServerHandler(context: tls),
                        ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                        Responder(received: box, respond: respond),
                    ])
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).get()
        return FakeServer(channel: channel, received: box)
    }

    private init(channel: Channel, received: NIOLockedValueBox<[Frame]>) {
        self.channel = channel
        self.received = received
    }

    private final class Responder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = Frame
        typealias OutboundOut = Frame
        let received: NIOLockedValueBox<[Frame]>
        let respond: @Sendable (Frame) -> [Frame]
        init(received: NIOLockedValueBox<[Frame]>, respond: @escaping @Sendable (Frame) -> [Frame]) {
            self.received = received
            self.respond = respond
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            received.withLockedValue { $0.append(frame) }
            for answer in respond(frame) { context.write(wrapOutboundOut(answer), promise: nil) }
            context.flush()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

/// Answers a hello with `ack` and nothing else: a node that accepts requests and never answers them.
func acceptAndIgnore(ack: Hello) -> @Sendable (Frame) -> [Frame] {
    { frame in
        if case .hello = frame.message { return [Frame(requestID: 0, message: .helloAck(ack))] }
        return []
    }
}
