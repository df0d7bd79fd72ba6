@testable import BranchyNode
import BranchyObservability
import BranchyTopology
import BranchyTransport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// An HTTP answer as read off the socket: status, headers and body.
struct HTTPAnswer {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }

    /// Parses `HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\nbody`.
    init(parsing text: String) throws {
        guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no end of headers in \(text.debugDescription)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw TestFailure("bad status line \(lines[0].debugDescription)")
        }
        self.status = status
        self.headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        self.body = String(text[split.upperBound...])
    }
}

/// Collects everything a connection receives until the server closes it.
final class ReceiveUntilClosed: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    private let done: EventLoopPromise<String>

    init(done: EventLoopPromise<String>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(String(buffer: received))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}

/// Writes `request` as is to 127.0.0.1:`port` over plain TCP and reads until the server closes.
func rawHTTPExchange(_ request: String, port: Int, group: any EventLoopGroup) async throws -> HTTPAnswer {
    let done = group.next().makePromise(of: String.self)
    let channel: any Channel
    do {
        channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ReceiveUntilClosed(done: done)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    } catch {
        done.fail(error)  // no connection: nothing will complete it
        throw error
    }
    // Never wait forever for a server that keeps the connection open.
    let timeout = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    defer { timeout.cancel() }
    try await channel.writeAndFlush(ByteBuffer(string: request)).get()
    return try HTTPAnswer(parsing: try await done.futureResult.get())
}

func httpGet(_ path: String, port: Int, group: any EventLoopGroup, method: String = "GET") async throws -> HTTPAnswer {
    try await rawHTTPExchange("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: branchy-tests\r\n\r\n", port: port, group: group)
}

extension Sockets {
    /// The plain-HTTP operations endpoint: `/metrics`, `/healthz`, `/readyz`, over a real socket.
    @Suite(.serialized) struct MetricsServerTests {
        /// Why the node is not ready, as the server's readiness closure reports it; nil when ready.
        final class Readiness: Sendable {
            let problem = NIOLockedValueBox<String?>(nil)
        }

        /// Starts a metrics server on 127.0.0.1 (a free port), runs `body` with it, then closes it.
        func withServer(_ body: (_ port: Int, _ metrics: NodeMetrics, _ readiness: Readiness, _ group: any EventLoopGroup) async throws -> Void)
            async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let metrics = NodeMetrics(node: "cloud", role: "cloud", model: "b-lenet3", fingerprint: "feedface00000000",
                                      exitNames: ["device-exit", "edge-exit", "cloud-exit"], replica: nil)
            let readiness = Readiness()
            let server = try await MetricsServer.start(at: Endpoint(host: "127.0.0.1", port: 0), metrics: metrics, group: group,
                                                       logger: testLogger("metrics")) {
                readiness.problem.withLockedValue { $0 }
            }
            do {
                let port = try #require(server.localAddress?.port)
                #expect(port > 0)
                try await body(port, metrics, readiness, group)
            } catch {
                await server.close()
                try? await group.shutdownGracefully()
                throw error
            }
            await server.close()
            try? await group.shutdownGracefully()
        }

        @Test func metricsAreServedInThePrometheusTextFormat() async throws {
            try await withServer { port, metrics, _, group in
                let scrapes = NIOLockedValueBox(0)
                metrics.onScrape { scrapes.withLockedValue { $0 += 1 } }
                metrics.answered(exit: 2, status: .answered, nanos: 1_000_000)
                metrics.answered(exit: 2, status: .answered, nanos: 1_000_000)

                let answer = try await httpGet("/metrics", port: port, group: group)
                #expect(answer.status == 200)
                #expect(answer.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
                #expect(answer.header("Content-Length") == "\(answer.body.utf8.count)")
                #expect(answer.header("Connection") == "close")
                #expect(answer.body.contains("# TYPE branchy_requests_total counter\n"))
                let text = MetricsText(answer.body)
                #expect(text.value(#"branchy_requests_total{exit="cloud-exit",status="answered"}"#) == 2)
                #expect(text.value(#"branchy_node_info{node="cloud",role="cloud",model="b-lenet3",fingerprint="feedface00000000",replica=""}"#) == 1)
                #expect(scrapes.withLockedValue { $0 } == 1, "the scrape hooks run for every GET /metrics")
            }
        }

        @Test func aQueryStringIsIgnoredAndHeadHasNoBody() async throws {
            try await withServer { port, _, _, group in
                let query = try await httpGet("/metrics?name[]=branchy_ready", port: port, group: group)
                #expect(query.status == 200)
                #expect(query.body.contains("branchy_ready"))
                let head = try await httpGet("/metrics", port: port, group: group, method: "HEAD")
                #expect(head.status == 200)
                #expect(head.body.isEmpty)
                #expect(Int(head.header("Content-Length") ?? "") ?? 0 > 0)
            }
        }

        @Test func healthzAnswersWhileTheProcessServes() async throws {
            try await withServer { port, _, readiness, group in
                readiness.problem.withLockedValue { $0 = "draining" }
                let answer = try await httpGet("/healthz", port: port, group: group)
                #expect(answer.status == 200)
                #expect(answer.body == "ok\n")
                #expect(answer.header("Content-Type") == "text/plain; charset=utf-8")
            }
        }

        @Test func readyzFollowsTheReadinessClosure() async throws {
            try await withServer { port, _, readiness, group in
                let ready = try await httpGet("/readyz", port: port, group: group)
                #expect(ready.status == 200)
                #expect(ready.body == "ready\n")

                readiness.problem.withLockedValue { $0 = "no connection to upstream 'cloud'" }
                let notReady = try await httpGet("/readyz", port: port, group: group)
                #expect(notReady.status == 503)
                #expect(notReady.body == "not ready: no connection to upstream 'cloud'\n")

                readiness.problem.withLockedValue { $0 = nil }
                #expect(try await httpGet("/readyz", port: port, group: group).status == 200)
            }
        }

        @Test func anUnknownPathIsNotFound() async throws {
            try await withServer { port, _, _, group in
                let answer = try await httpGet("/metrics/extra", port: port, group: group)
                #expect(answer.status == 404)
                #expect(answer.body == "not found: try /metrics, /healthz or /readyz\n")
            }
        }

        @Test(arguments: ["POST", "PUT", "DELETE"])
        func onlyGetAndHeadAreAllowed(method: String) async throws {
            try await withServer { port, metrics, _, group in
                let scrapes = NIOLockedValueBox(0)
                metrics.onScrape { scrapes.withLockedValue { $0 += 1 } }
                let answer = try await rawHTTPExchange(
                    "\(method) /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello", port: port, group: group)
                #expect(answer.status == 405)
                #expect(answer.header("Allow") == "GET, HEAD")
                #expect(answer.body == "only GET and HEAD\n")
                #expect(scrapes.withLockedValue { $0 } == 0)
            }
        }

        @Test func closeStopsListening() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let metrics = NodeMetrics(node: "edge", role: "edge", model: "m", fingerprint: "", exitNames: ["a", "b"], replica: nil)
            let server = try await MetricsServer.start(at: Endpoint(host: "127.0.0.1", port: 0), metrics: metrics, group: group,
                                                       logger: testLogger("metrics")) { nil }
            let port = try #require(server.localAddress?.port)
            #expect(try await httpGet("/healthz", port: port, group: group).status == 200)
            await server.close()
            await #expect(throws: (any Error).self) { try await httpGet("/healthz", port: port, group: group) }
            try await group.shutdownGracefully()
        }
    }
}
