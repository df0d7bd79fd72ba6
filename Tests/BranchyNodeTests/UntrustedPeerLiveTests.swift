import BranchyModel
@testable import BranchyNode
import BranchyReport
import BranchyTensor
import BranchyWire
import Foundation
import NIOCore
import Testing

extension Sockets {
    /// Peers that lie or hold on, against live nodes: an upstream that answers with exits, classes
    /// and byte counts that cannot be; a child that floods `statsRequest`s and never reads; one that
    /// dribbles a header a byte at a time; one that sends compressed features of a huge shape.
    @Suite struct UntrustedPeerLiveTests {
        static let v2 = FrameDialect.after(version: 2, names: .empty)

        /// A device whose edge is `answer` (a fake with the edge's certificate).
        func runDevice(against answer: @escaping @Sendable (Frame) -> [Frame], samples: Int = 6) async throws -> [SampleRecord] {
            var records: [SampleRecord] = []
            try await Cluster.with(ClusterOptions(deviceThreshold: 0)) { cluster in
                var hello = try cluster.context("edge").hello
                hello.protocolVersion = 2
                let ack = hello
                _ = try await cluster.startFake(as: "edge") { frame in
                    if case .hello = frame.message { return [Frame(requestID: 0, message: .helloAck(ack))] }
                    return answer(frame)
                }
                let device = try await cluster.startDevice(connectTimeout: 5)
                records = await device.run(data: try Fixture.shared().data, count: samples, concurrency: 1) { _ in }
            }
            return records
        }

        static func lie(exit: UInt8 = 2, name: String = "cloud-exit", predicted: UInt16 = 1, hopBytes: UInt64 = 10) -> @Sendable (Frame) -> [Frame] {
            { frame in
                guard case .infer = frame.message else { return [] }
                return [Frame(requestID: frame.requestID, message: .result(InferResult(
                    exitIndex: exit, exitName: name, nodeName: "cloud", predictedClass: predicted, confidence: 0.9, entropy: 0.1,
                    hops: [HopCost(link: "edge->cloud", requestFrameBytes: hopBytes, responseFrameBytes: hopBytes,
                                   requestTLSBytes: hopBytes, responseTLSBytes: hopBytes)])))]
            }
        }

        @Test(arguments: [(UInt8(255), "cloud-exit", UInt16(1)), (2, "cloud-exit", 65535), (2, "edge-exit", 1), (0, "device-exit", 1)])
        func impossibleResultsAreNotTakenAsAnswers(exit: UInt8, name: String, predicted: UInt16) async throws {
            let records = try await runDevice(against: Self.lie(exit: exit, name: name, predicted: predicted))
            #expect(records.count == 6)
            // Every sample is answered by the device's own exit, marked degraded: the first because its
            // answer was refused, the others because the lying connection was dropped.
            for r in records {
                #expect(r.status == .degraded && r.node == "device" && r.exit == 0, "\(r.status) \(r.node) \(r.exit): \(r.reason)")
            }
            #expect(records.first?.reason.contains("upstream answer refused") == true, "\(records.first?.reason ?? "")")
        }

        /// Byte counts beyond the protocol's bound do not decode (the link drops the connection);
        /// at the bound, the report's sums saturate rather than trap.
        @Test func hopByteCountsNearTwoToTheSixtyFourNeitherCrashNorCount() async throws {
            let huge = try await runDevice(against: Self.lie(hopBytes: UInt64.max - 7))
            #expect(huge.allSatisfy { $0.status == .degraded && $0.node == "device" }, "\(huge.map(\.reason))")
            let atBound = try await runDevice(against: Self.lie(hopBytes: WireLimits.maxHopBytes))
            #expect(atBound.allSatisfy { $0.status == .answered && $0.node == "cloud" })
            let report = RunReport(records: atBound, exitNames: ["device-exit", "edge-exit", "cloud-exit"], inputShape: [1, 28, 28],
                                   duration: 1, handshakeBytes: 0, thresholds: [0, 0], codec: "int8", fingerprint: "f", topology: "t",
                                   device: "device")
            #expect(report.totalWireBytes > 0 && (try? report.json()) != nil)
        }

        /// A node that cannot dial its upstream is not ready and says why: the dial's own error.
        @Test func readinessNamesTheFailedDial() async throws {
            try await Cluster.with { cluster in
                let device = try await cluster.startDevice(connectTimeout: 0.3)  // no edge runs
                let why = await eventually(within: 3) { await device.notReadyBecause()?.contains("failed") == true }
                let reason = await device.notReadyBecause() ?? "ready"
                #expect(why, "\(reason)")
                #expect(reason.contains("no connection to upstream 'edge'") && reason.contains("connect to edge at 127.0.0.1"), "\(reason)")
            }
        }

        /// An edge only, answering everything itself, with a short idle timeout.
        func withEdge(limits: [String: Int], _ body: (Cluster, InferenceServer) async throws -> Void) async throws {
            try await Cluster.with(ClusterOptions(edgeThreshold: 1000, edgeLimits: limits)) { cluster in
                let server = try await cluster.startServer("edge")
                try await body(cluster, server)
            }
        }

        func client(_ cluster: Cluster, _ server: InferenceServer, version: UInt16) async throws -> WireClient {
            let client = try await WireClient.connect(port: cluster.edgePort, group: cluster.group,
                                                      identity: .node("device", in: try Fixture.shared().certs))
            let hello = Hello(protocolVersion: version, role: .device, nodeName: "device", fingerprint: server.context.fingerprint)
            guard case .helloAck = await client.hello(hello)?.message else { throw TestFailure("hello not accepted") }
            return client
        }

        /// The answers go through the same output budget as results: a child that asks and never
        /// reads is paused, then closed, and the edge holds a bounded amount for it meanwhile.
        @Test func aStatsFloodThatIsNeverReadEndsInAClose() async throws {
            try await withEdge(limits: ["idleTimeoutMs": 1_000]) { cluster, server in
                let client = try await client(cluster, server, version: 2)
                try await client.channel.setOption(.autoRead, value: false).get()
                var chunk = ByteBuffer()
                for i in 0..<20_000 { chunk.writeFrame(Frame(requestID: UInt64(i % 100 + 1), message: .statsRequest), dialect: Self.v2) }
                // Ids repeat only once answered... or not: a repeat in flight is a duplicate, answered with an error.
                for _ in 0..<20 { await client.send(chunk) }
                // However fast the edge works through the flood (slowly under ThreadSanitizer), the
                // connection ends: by the unread answers, or by the idle timeout and a goodbye that
                // cannot be written.
                let closed = await eventually(within: 30) { server.connections.count == 0 }
                #expect(closed, "the edge still holds \(server.connections.count) connection(s)")
                await client.close()
            }
        }

        /// The deadline of a frame runs from its first byte, not from the last byte received.
        @Test func aHeaderDribbledOneByteAtATimeIsCutOff() async throws {
            try await withEdge(limits: ["handshakeTimeoutMs": 800, "idleTimeoutMs": 60_000]) { cluster, server in
                let client = try await client(cluster, server, version: 1)
                var header = ByteBuffer()
                header.writeFrame(Frame(requestID: 1, message: .goodbye))
                let bytes = Array(header.readableBytesView)
                let started = Date()
                for b in bytes {
                    if await client.closed(within: 0.15) { break }
                    await client.send(ByteBuffer(bytes: [b]))
                }
                #expect(await client.closed(within: 3), "a 20-byte header over \(Date().timeIntervalSince(started)) s is still open")
                #expect(Date().timeIntervalSince(started) < 2.5)
            }
        }

        @Test func compressedFeaturesOfAHugeShapeAreRefusedBeforeInflating() async throws {
            guard LosslessCompression.zstd.isAvailable else { return }
            try await withEdge(limits: [:]) { cluster, server in
                let client = try await client(cluster, server, version: 2)
                let features = EncodedTensor(kind: .float32, shape: [1, 2048, 2048], parameters: .none, bytes: [],
                                             compression: .zstd, compressedBytes: try LosslessCompression.zstd.compress([UInt8](repeating: 0, count: 1 << 16)))
                var frame = ByteBuffer()
                frame.writeFrame(Frame(requestID: 1, message: .infer(InferRequest(sampleID: 1, stageIndex: 1, features: features))), dialect: Self.v2)
                await client.send(frame)
                #expect(await client.closed(), "the edge kept the connection")
            }
        }
    }
}
