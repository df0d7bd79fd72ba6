import ArgumentParser
import BranchyTopology
import BranchyTransport
import BranchyWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// `HOST PORT CA CERTS`: where the node listens, and the cluster's TLS files (CERTS holds `<node>.pem`
/// and `<node>-key.pem` for every node).
struct Cluster: ParsableArguments {
    @Argument var host: String
    @Argument var port: Int
    @Argument(help: "The cluster CA certificate (PEM).") var ca: String
    @Argument(help: "The folder of the node certificates.") var certs: String

    /// The node's socket address.
    func address() throws -> SocketAddress { try SocketAddress.makeAddressResolvingHost(host, port: port) }

    /// The client TLS context presenting `node`'s certificate, made once by the nodes' own ``TLSLayer``.
    func context(for node: String) throws -> NIOSSLContext {
        if let context = contexts.value[node] { return context }
        let dir = URL(fileURLWithPath: certs)
        let context = try TLSLayer.clientContext(TLSFiles(ca: URL(fileURLWithPath: ca), cert: dir.appendingPathComponent("\(node).pem"),
                                                          key: dir.appendingPathComponent("\(node)-key.pem")), node: node)
        contexts { $0[node] = context }
        return context
    }

    /// A TLS connection as `node` (its handshake done) to the node whose certificate names `server`.
    func connect(as node: String, server: String) async throws -> Link {
        try await Link.open(address(), tls: (context(for: node), server))
    }

    /// A TLS connection as `node` whose hello (protocol `version`) was acknowledged.
    func authenticated(as node: String, server: String, fingerprint: ModelFingerprint, version: UInt16 = 1) async throws -> Link {
        let link = try await connect(as: node, server: server)
        let what = version == 1 ? "hello" : "version \(version) hello"
        do {
            try await link.send(.hello(Hello(protocolVersion: version, role: .device, nodeName: node, fingerprint: fingerprint)))
            let frame = try await link.frame(within: 5)
            if case .helloAck = frame?.message { return link }
            throw CheckFailed(frame.map { "\(what) as '\(node)' answered with \($0.summary)" }
                              ?? "the server closed the connection of '\(node)' after its \(what)")
        } catch {
            link.hardClose()
            throw error
        }
    }
}

/// The client TLS contexts made so far, by node.
private let contexts = Shared<[String: NIOSSLContext]>([:])

/// `CLUSTER NODE SERVER FINGERPRINT`: who to connect as, the name the server's certificate holds, the model fingerprint.
struct Peer: ParsableArguments {
    @OptionGroup var cluster: Cluster
    @Argument var node: String
    @Argument var server: String
    @Argument(help: "64 hex digits.") var fingerprint: ModelFingerprint
}

/// The connection is still open when the probe stopped waiting.
struct StillOpen: Error, CustomStringConvertible {
    var description: String { "timed out: the connection is still open" }
}

/// One client connection under test: plain TCP or TLS over it, the bytes received buffered and split into
/// frames by BranchyWire's ``FrameDecoder`` (which follows the dialect the hello fixed).
final class Link: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    /// What the connection received: bytes not yet decoded, the decoder, the close, the TLS handshake, the first error.
    private struct State {
        var bytes = ByteBuffer(), decoder = FrameDecoder(), closed = false, handshake = false, failure: (any Error)? = nil
    }

    private let state = Mutex(State())
    private let box = Mutex<(any Channel)?>(nil)
    /// The connection's channel.
    var channel: any Channel { box.withLock { $0! } }

    /// Connects to `address`, over TLS when `tls` (a context and the name the server's certificate must
    /// hold) is given, and waits for the handshake.
    static func open(_ address: SocketAddress, tls: (NIOSSLContext, String)?, timeout: Int64 = 5) async throws -> Link {
        let link = Link()
        let connecting = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteCounter())   // below TLS: closes without close_notify
                    if let (context, server) = tls { try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: server)) }
                    try sync.addHandler(link)
                }
            }.connect(to: address)
        let channel: any Channel
        do { channel = try await connecting.get() } catch { throw CheckFailed("cannot connect to \(address): \(error)") }
        link.box.withLock { $0 = channel as (any Channel)? }
        guard let (_, server) = tls else { return link }
        let deadline = monotonic() + Double(timeout)
        while !link.state.withLock({ $0.handshake || $0.closed }) && monotonic() < deadline { await pause(0.002) }
        let (done, failure) = link.state.withLock { ($0.handshake, $0.failure) }
        guard done, try await channel.eventLoop.submit({ TLSLayer.peer(of: channel.pipeline, isNamed: server) }).get() else {
            link.hardClose()
            throw CheckFailed("TLS handshake with '\(server)' at \(address) failed: "
                              + (done ? "its certificate does not name '\(server)'" : failure.map { "\($0)" } ?? "no answer within \(timeout) s"))
        }
        return link
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        state.withLock { _ = $0.bytes.writeBuffer(&bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) { state.withLock { $0.closed = true } }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        state.withLock { $0.failure = $0.failure ?? error }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { state.withLock { $0.handshake = true } }
    }

    /// The next frame, or nil once the server closed the connection.
    ///
    /// - Throws: ``StillOpen`` after `seconds` without either; ``CheckFailed`` for bytes that are no frame.
    func frame(within seconds: Double) async throws -> Frame? {
        let deadline = monotonic() + seconds
        while true {
            let (frame, closed) = try state.withLock { s -> (Frame?, Bool) in
                do { return (try s.decoder.decode(buffer: &s.bytes), s.closed) } catch {
                    throw CheckFailed("the server sent bytes that are not a Branchy frame: \(error)")
                }
            }
            if frame != nil || closed { return frame }
            if monotonic() >= deadline { throw StillOpen() }
            await pause(0.002)
        }
    }

    /// What arrives within `seconds`: a frame, or nil for the close; nil (no answer) while the connection stays silent.
    func answer(within seconds: Double) async throws -> Frame?? {
        do { return .some(try await frame(within: seconds)) } catch is StillOpen { return nil }
    }

    /// The frames received until the server closed the connection; throws ``CheckFailed`` with `why` after `seconds`.
    func untilClosed(within seconds: Double, or why: @autoclosure () -> String = "still open") async throws -> [Frame] {
        let deadline = monotonic() + seconds
        var frames: [Frame] = []
        do {
            while let frame = try await frame(within: max(0.001, deadline - monotonic())) { frames.append(frame) }
        } catch is StillOpen { throw CheckFailed(why()) }
        return frames
    }

    /// The bytes received until the server closed the connection (or `seconds` passed), as text.
    func text(within seconds: Double) async -> String {
        let deadline = monotonic() + seconds
        while !state.withLock({ $0.closed }) && monotonic() < deadline { await pause(0.002) }
        return state.withLock { String(buffer: $0.bytes) }
    }

    /// `frames` laid out as the connection's dialect wants them.
    func encode(_ frames: [Frame]) -> ByteBuffer {
        let dialect = state.withLock { $0.decoder.dialect }
        var out = ByteBuffer()
        for frame in frames { out.writeFrame(frame, dialect: dialect) }
        return out
    }

    /// Sends `frames` in one write.
    func send(_ frames: Frame...) async throws { try await write(encode(frames)) }

    /// Writes raw bytes; returns once the socket took them.
    func write(_ bytes: ByteBuffer) async throws { try await channel.writeAndFlush(bytes) }

    /// Closes the TCP connection without TLS close_notify.
    func hardClose() {
        guard let channel = box.withLock({ $0 }) else { return }
        channel.eventLoop.execute { try? channel.pipeline.syncOperations.handler(type: ByteCounter.self).closeBelowTLS() }
    }

    /// Whether the kernel's TCP state is still established.
    func established() async -> Bool { await tcpEstablished(channel) }
}

/// Whether the kernel's TCP state of `channel` is established (read with TCP_INFO, so nothing is read).
func tcpEstablished(_ channel: any Channel) async -> Bool {
    guard let provider = channel as? any SocketOptionProvider, let info = try? await provider.getTCPInfo().get() else { return false }
    return info.tcpi_state == 1   // TCP_ESTABLISHED
}

extension Frame {
    /// A hello frame.
    static func hello(_ hello: Hello) -> Frame { Frame(requestID: 0, message: .hello(hello)) }
    /// The error code, when this is an error frame.
    var errorCode: UInt16? { if case .error(let e) = message { e.code.rawValue } else { nil } }
    /// The type, and an error's code and text, for messages.
    var summary: String { if case .error(let e) = message { "error \(e.code.rawValue) (\(e.message))" } else { "\(message.type)" } }
}
