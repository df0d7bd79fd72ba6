import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// One line of the connection holder's status file.
struct HoldStatus: Codable {
    var t = 0.0, open = 0, connected = 0, closed = 0, reset = 0, failed = 0, final = false
}

/// Opens COUNT TCP connections at once (half of them send the first 5 bytes of a TLS record and stop, the rest
/// send nothing), never reconnects, and appends a JSON status line to STATUS every 100 ms. Ends when every
/// connection was closed or reset by the server (or failed to connect), or after SECONDS.
struct Hold: Check {
    static let configuration = CommandConfiguration(abstract: "Holds idle or half-open TCP connections and logs how many stay open.")
    @Argument var host: String
    @Argument var port: Int
    @Argument var count: Int
    @Argument var seconds: Double
    @Argument var status: String

    func check() async throws {
        raiseDescriptorLimit(count + 64)
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port), t0 = monotonic()
        let tally = Shared(HoldStatus(open: count)), channels = Shared<[any Channel]>([])
        // When the edge's accept queue overflows, the kernel may drop the last ACK of the TCP handshake (SYN
        // cookies): this end then believes it is connected to a server that never heard of it. A keepalive
        // probe draws a reset there, and only an ACK from a live connection.
        let tcp = SocketOptionLevel(IPPROTO_TCP)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(seconds * 1000))).channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.socket(tcp, SocketOptionName(TCP_KEEPIDLE)), value: 1)
            .channelOption(.socket(tcp, SocketOptionName(TCP_KEEPINTVL)), value: 1)
            .channelOption(.socket(tcp, SocketOptionName(TCP_KEEPCNT)), value: 3)
        for i in 0..<count {
            bootstrap.channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(HeldConnection(i, tally)) }
            }.connect(to: address).whenComplete { result in
                switch result {
                case .success(let channel): channels { $0.append(channel) }
                case .failure: tally { $0.failed += 1; $0.open -= 1 }
                }
            }
        }
        let started = monotonic() - t0
        _ = FileManager.default.createFile(atPath: status, contents: nil)
        let file = FileHandle(forWritingAtPath: status)
        func write(final: Bool = false) -> HoldStatus {
            var row = tally.value
            (row.t, row.final) = ((1000 * (monotonic() - t0)).rounded() / 1000, final)
            file?.write(((try? JSONEncoder().encode(row)) ?? Data()) + Data("\n".utf8))
            return row
        }
        var row = write()
        while row.open > 0 && monotonic() - t0 < seconds {
            await pause(0.1)
            row = write()
        }
        row = write(final: true)
        channels.value.forEach { $0.close(promise: nil) }
        note("hold: \(count) connections started in \(fmt(started)) s; connected \(row.connected), closed by the server \(row.closed), "
             + "reset \(row.reset), failed \(row.failed), still open \(row.open) after \(fmt(monotonic() - t0, 1)) s")
    }
}

/// Counts one held connection in and out (closed: the server's FIN came first; reset: the connection ended
/// without); odd ones send a TLS record header whose ClientHello never follows.
final class HeldConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let index: Int, tally: Shared<HoldStatus>
    private var finished = false
    init(_ index: Int, _ tally: Shared<HoldStatus>) { (self.index, self.tally) = (index, tally) }

    func channelActive(context: ChannelHandlerContext) {
        tally { $0.connected += 1 }
        if index % 2 == 1 { context.writeAndFlush(NIOAny(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00])), promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event as? ChannelEvent == .inputClosed else { return }
        finished = true
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        tally { $0.open -= 1; if finished { $0.closed += 1 } else { $0.reset += 1 } }
    }
}

/// From STATUS: the count of open held connections reached 0 within SECONDS.
struct HoldVerdict: Check {
    static let configuration = CommandConfiguration(abstract: "Checks the connection holder's log: every held connection ended in time.")
    @Argument var status: String
    @Argument var count: Int
    @Argument var seconds: Double

    func check() async throws {
        let rows = try jsonLines(status, as: HoldStatus.self)
        guard let last = rows.last else { throw CheckFailed("no status from the connection holder in \(status)") }
        note("hold: peak \(rows.map(\.open).max()!) open, last \(last)")
        try require(last.connected > 0, "none of the held connections was established")
        guard let zero = rows.first(where: { $0.open == 0 })?.t else {
            throw CheckFailed("\(last.open) of \(count) held connections still open after \(fmt(last.t, 1)) s")
        }
        try require(zero <= seconds, "the last held connection was closed after \(fmt(zero, 1)) s, not within \(seconds) s")
        print("\(last.connected) held connections established, all ended after \(fmt(zero, 1)) s "
              + "(\(last.closed) closed by the edge, \(last.reset) reset, \(last.failed) failed to connect)")
    }
}
