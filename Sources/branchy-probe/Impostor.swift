import ArgumentParser
import BranchyTopology
import BranchyTransport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// One line of the impostor's log: `handshake` (a client finished the TLS handshake), `closed` (the bytes it
/// sent after it) or `failed` (a handshake that did not finish).
struct ImpostorEvent: Codable {
    var event, peer: String
    var client: [String]? = nil, bytes: Int? = nil, head: String? = nil, brny: Bool? = nil, error: String? = nil
}

/// A TLS 1.3 server that presents CERT (another node's certificate from the cluster CA) and requires a client
/// certificate; appends one JSON line per event to LOG. Runs until killed.
struct Impostor: Check {
    static let configuration = CommandConfiguration(abstract: "A TLS server with another node's certificate, logging what clients send.")
    @Argument var host: String
    @Argument var port: Int
    @Argument var cert: String
    @Argument var key: String
    @Argument var ca: String
    @Argument var log: String

    func check() async throws {
        signal(SIGTERM) { _ in _exit(0) }
        let files = TLSFiles(ca: URL(fileURLWithPath: ca), cert: URL(fileURLWithPath: cert), key: URL(fileURLWithPath: key))
        let context = try TLSLayer.serverContext(files, node: "impostor")
        guard FileManager.default.fileExists(atPath: log) || FileManager.default.createFile(atPath: log, contents: nil),
              let handle = FileHandle(forWritingAtPath: log) else { throw CheckFailed("cannot write to \(log)") }
        handle.seekToEndOfFile()
        let file = Shared(handle)
        let journal: Journal = { event in file { $0.write(((try? JSONEncoder().encode(event)) ?? Data()) + Data("\n".utf8)) } }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(NIOSSLServerHandler(context: context), ImpostorSession(journal))
                }
            }.bind(host: host, port: port).get()
        try await server.closeFuture.get()
    }
}

/// Appends one line to the impostor's log.
typealias Journal = @Sendable (ImpostorEvent) -> Void

/// One connection to the impostor: notes the handshake and the bytes the client sends after it (closed after 5 s).
final class ImpostorSession: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let journal: Journal
    private var peer = "?", client: [String]?, received: [UInt8] = [], error = "closed before the handshake finished"
    init(_ journal: @escaping Journal) { self.journal = journal }

    func channelActive(context: ChannelHandlerContext) {
        peer = context.remoteAddress.map { "\($0)" } ?? "?"
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) { if self.client == nil { channel.close(promise: nil) } }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted = event as? TLSUserEvent else { return }
        client = TLSLayer.peerNames(of: context.pipeline)
        journal(ImpostorEvent(event: "handshake", peer: peer, client: client))
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytesView.prefix(65536 - received.count)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.error = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard client != nil else { return journal(ImpostorEvent(event: "failed", peer: peer, error: error)) }
        let brny = received.indices.contains { received[$0...].starts(with: "BRNY".utf8) }
        let head = received.prefix(24).map { String(format: "%02x", $0) }.joined()
        journal(ImpostorEvent(event: "closed", peer: peer, bytes: received.count, head: head, brny: brny))
    }
}

/// From LOG: at least one client finished the handshake with the impostor and none sent a byte after it.
struct ImpostorVerdict: Check {
    static let configuration = CommandConfiguration(abstract: "Checks the impostor's log: handshakes happened, no byte followed them.")
    @Argument var log: String

    func check() async throws {
        let events = try jsonLines(log, as: ImpostorEvent.self)
        let handshakes = events.filter { $0.event == "handshake" }, closed = events.filter { $0.event == "closed" }
        let sent = closed.reduce(0) { $0 + ($1.bytes ?? 0) }
        note("impostor: \(handshakes.count) TLS handshakes, \(closed.count) closes, \(sent) bytes after the handshake; "
             + "client certificates \(Set(handshakes.flatMap { $0.client ?? [] }).sorted())")
        try require(!handshakes.isEmpty, "no client finished a TLS handshake with the impostor: the check proves nothing")
        if let hello = closed.first(where: { $0.brny == true }) {
            throw CheckFailed("the device sent a Branchy frame to the impostor: \(hello.head ?? "")")
        }
        try require(sent == 0, "the device sent \(sent) bytes to the impostor after the handshake")
        print("\(handshakes.count) handshakes with the impostor, 0 bytes after them")
    }
}
