import BranchyModel
import BranchyTopology
import BranchyWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import BranchyNode

/// device → edge → cloud, the cloud run as two listed replicas, all in this process with real
/// mutual TLS on 127.0.0.1 and fresh ports; every node has its metrics (no HTTP endpoint).
final class ReplicatedCluster: @unchecked Sendable {
    let topologyURL: URL
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let pool = NIOThreadPool(numberOfThreads: 2)
    let edge: InferenceServer
    let clouds: [InferenceServer]
    let device: DeviceRunner
    /// With `hungReplica`: the fake in its place, which answers hellos and heartbeats but no request.
    private(set) var hung: FakeServer?

    /// Every sample leaves the device and the edge (thresholds 0): each needs a cloud replica.
    /// With `hungReplica`, that replica is a fake that answers heartbeats and never a request.
    private init(fixture: Fixture, ports: [Int], hungReplica: Int? = nil, edgeDeadlineMs: Int = 10_000) async throws {
        pool.start()
        let yaml = """
            model: \(fixture.modelDirectory.path)
            certs: \(fixture.certs.path)
            nodes:
              - name: device
                role: device
                stages: [device]
                thresholds: [0]
                upstream: edge
                codec: int8
              - name: edge
                role: edge
                stages: [edge]
                thresholds: [0]
                listen: 127.0.0.1:\(ports[0])
                upstream: cloud
                codec: int8
                deadlineMs: \(edgeDeadlineMs)
              - name: cloud
                role: cloud
                stages: [cloud]
                replicas:
                  - 127.0.0.1:\(ports[1])
                  - 127.0.0.1:\(ports[2])

            """
        topologyURL = fixture.root.appendingPathComponent("topologies/replicas-\(UUID().uuidString).yaml")
        try yaml.write(to: topologyURL, atomically: true, encoding: .utf8)

        let path = topologyURL.path
        let edgeContext = try NodeContext.load(topologyPath: path, nodeName: "edge")
        func load(_ name: String, replica: Int? = nil) throws -> NodeContext {
            try NodeContext.load(topologyPath: path, nodeName: name, replica: replica, reusing: edgeContext)
        }
        var clouds: [InferenceServer] = []
        for i in 0..<2 {
            let context = try load("cloud", replica: i)
            if i == hungReplica {
                var hello = context.hello
                hello.protocolVersion = 2
                let ack = hello
                hung = try await FakeServer.start(context: context, group: group) { frame in
                    switch frame.message {
                    case .hello: return [Frame(requestID: 0, message: .helloAck(ack))]
                    case .statsRequest: return [Frame(requestID: frame.requestID, message: .stats([]))]
                    default: return []
                    }
                }
                continue
            }
            let cloud = try InferenceServer(context: context, group: group, pool: pool, logger: testLogger("cloud#\(i)"),
                                            metrics: NodeMain.metrics(for: context))
            try await cloud.start()
            clouds.append(cloud)
        }
        self.clouds = clouds
        edge = try InferenceServer(context: edgeContext, group: group, pool: pool, logger: testLogger("edge"),
                                   metrics: NodeMain.metrics(for: edgeContext))
        try await edge.start()
        device = try DeviceRunner(context: try load("device"), group: group, logger: testLogger("device"))
    }

    /// Runs `body` with a fresh cluster and always shuts it down afterwards.
    static func with(hungReplica: Int? = nil, edgeDeadlineMs: Int = 10_000, _ body: (ReplicatedCluster) async throws -> Void) async throws {
        let fixture = try Fixture.shared()
        let probe = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ports = try await freePorts(3, group: probe)
        try await probe.shutdownGracefully()
        let cluster = try await ReplicatedCluster(fixture: fixture, ports: ports, hungReplica: hungReplica, edgeDeadlineMs: edgeDeadlineMs)
        do {
            try await body(cluster)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// The edge's metrics, scraped (which publishes the upstream gauges first).
    func edgeMetrics() async -> MetricsText { MetricsText(await edge.metrics!.scrape()) }

    /// Requests cloud replica `i` answered at the cloud's exit.
    func answeredByCloud(_ i: Int) -> Double {
        MetricsText(clouds[i].metrics!.registry.emitToString())
            .value(#"branchy_requests_total{exit="cloud-exit",status="answered"}"#) ?? -1
    }

    /// Waits until the edge has a connection, with its hello done, to every replica.
    func waitUntilEveryReplicaIsUp(seconds: Double = 5) async -> Bool {
        await eventually(within: seconds) {
            let text = await edgeMetrics()
            return (0..<clouds.count).allSatisfy { text.value("branchy_upstream_up{link=\"edge->cloud\",replica=\"\($0)\"}") == 1 }
        }
    }

    func shutdown() async {
        await device.stop()
        await edge.drain(graceSeconds: 1)
        for cloud in clouds { await cloud.drain(graceSeconds: 1) }
        try? await hung?.channel.close().get()
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }
}

extension Sockets {
    /// An edge whose upstream runs as two replicas: requests are spread over both, and when one
    /// goes away the other answers everything, with no request failed or degraded.
    @Suite(.serialized) struct ReplicaFailoverLiveTests {
        @Test func theEdgeConnectsToEveryReplica() async throws {
            try await ReplicatedCluster.with { cluster in
                #expect(cluster.edge.context.upstream?.dialAddresses.count == 2)
                #expect(cluster.clouds.map { $0.context.config.listen } == cluster.edge.context.upstream?.dialAddresses)
                #expect(cluster.clouds.map(\.context.replica) == [0, 1])
                let up = await cluster.waitUntilEveryReplicaIsUp()
                let gauges = await cluster.edgeMetrics().text
                #expect(up, "\(gauges)")
                #expect(await cluster.edge.notReadyBecause() == nil)
                for cloud in cluster.clouds { #expect(await cloud.notReadyBecause() == nil) }
                let text = await cluster.edgeMetrics()
                #expect(text.value("branchy_ready") == 1)
                #expect(text.value(#"branchy_handshakes_total{side="client",result="ok"}"#) == 2)
            }
        }

        /// Graceful (the replica drains: answers what it has, refuses the rest with a goodbye) or
        /// abrupt (its connections are cut with requests in flight, which the edge sends again).
        @Test(arguments: [2.0, 0.0])
        func everyRequestIsAnsweredWhenAReplicaStopsMidRun(graceSeconds: Double) async throws {
            let fixture = try Fixture.shared()
            try await ReplicatedCluster.with { cluster in
                let up = await cluster.waitUntilEveryReplicaIsUp()
                let gauges = await cluster.edgeMetrics().text
                #expect(up, "\(gauges)")
                await cluster.device.start(connectTimeout: 5)
                let count = 60, stopAfter = 20
                let beforeStop = NIOLockedValueBox<[Double]>([])
                // Paced, so that the run is still going when the replica stops; no sample starts
                // while the progress callback runs, so the stop happens between samples in flight.
                let records = await cluster.device.run(data: fixture.data, count: count, concurrency: 4, rate: 200) { done in
                    guard done == stopAfter else { return }
                    beforeStop.withLockedValue { $0 = [cluster.answeredByCloud(0), cluster.answeredByCloud(1)] }
                    blockingAwait { await cluster.clouds[0].drain(graceSeconds: graceSeconds) }
                }

                #expect(records.map(\.sample) == Array(0..<count))
                for r in records {
                    #expect(r.status == .answered, "sample \(r.sample): \(r.status) from \(r.node): \(r.reason)")
                    #expect(r.node == "cloud" && r.exit == 2, "sample \(r.sample): \(r.node) exit \(r.exit)")
                    #expect(r.hops.map(\.link) == ["device->edge", "edge->cloud"], "sample \(r.sample)")
                }
                // Both replicas took requests before the stop.
                let before = beforeStop.withLockedValue { $0 }
                #expect(before.count == 2 && before.allSatisfy { $0 > 0 }, "answered by each replica before the stop: \(before)")
                // Afterwards only the replica left answered; between them, every request was answered
                // (a request cut off in flight may have been computed by both).
                let after = [cluster.answeredByCloud(0), cluster.answeredByCloud(1)]
                #expect(after[1] > before[1], "\(before) -> \(after)")
                #expect(after[0] + after[1] >= Double(count), "\(after)")
                let edge = await cluster.edgeMetrics()
                #expect(edge.value(#"branchy_requests_total{exit="cloud-exit",status="answered"}"#) == Double(count))
                #expect(edge.sum("branchy_requests_total", ["status": "degraded"]) == 0)
                #expect(edge.sum("branchy_requests_total", ["status": "failed"]) == 0)
                #expect(edge.value(#"branchy_upstream_up{link="edge->cloud",replica="0"}"#) == 0)
                #expect(edge.value(#"branchy_upstream_up{link="edge->cloud",replica="1"}"#) == 1)
                #expect(await cluster.edge.notReadyBecause() == nil, "one replica is enough")
            }
        }

        /// A replica that answers its heartbeats but never a request leaves the rotation after three
        /// missed deadlines (outlier ejection), whatever its heartbeats say: the samples after that
        /// go to the healthy replica instead of waiting out a deadline each.
        @Test func aReplicaThatAnswersHeartbeatsButNoRequestIsEjected() async throws {
            let fixture = try Fixture.shared()
            try await ReplicatedCluster.with(hungReplica: 1, edgeDeadlineMs: 250) { cluster in
                let up = await eventually(within: 5) {
                    let text = await cluster.edgeMetrics()
                    return (0..<2).allSatisfy { text.value("branchy_upstream_up{link=\"edge->cloud\",replica=\"\($0)\"}") == 1 }
                }
                let before = await cluster.edgeMetrics()
                #expect(up, "\(before.text)")
                #expect(before.value(#"branchy_upstream_ejections_total{link="edge->cloud",replica="1"}"#) == 0, "the series exists at zero")
                await cluster.device.start(connectTimeout: 5)
                let count = 80
                let started = Date()
                let records = await cluster.device.run(data: fixture.data, count: count, concurrency: 1) { _ in }
                let seconds = Date().timeIntervalSince(started)
                let degraded = records.filter { $0.status == .degraded }
                // Three deadlines at most before the ejection (five seconds, longer than this run).
                #expect(degraded.count <= 3, "\(degraded.count) degraded: \(degraded.map(\.reason))")
                #expect(records.filter { $0.status == .answered }.count >= count - 3)
                #expect(seconds < 0.25 * 3 + 5, "\(seconds) s")
                let edge = await cluster.edgeMetrics()
                #expect(edge.value(#"branchy_upstream_ejections_total{link="edge->cloud",replica="1"}"#) == 1, "\(edge.text)")
                #expect(edge.value(#"branchy_upstream_ejections_total{link="edge->cloud",replica="0"}"#) == 0)
                // Its heartbeats kept it connected all along.
                #expect(edge.value(#"branchy_upstream_up{link="edge->cloud",replica="1"}"#) == 1)
            }
        }
    }
}
