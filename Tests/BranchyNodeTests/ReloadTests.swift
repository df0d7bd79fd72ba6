@testable import BranchyNode
import BranchyObservability
import BranchyTopology
import BranchyTransport
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Re-reading the topology while serving (SIGHUP): what may change is applied, anything else is
/// refused and the running configuration stays.
@Suite struct ReloadTests {
    /// What a test changes in the topology (device → edge → cloud).
    struct Setup {
        var edgeThreshold = "0.2"
        var edgePort = 7_000
        var edgeCodec = "int8"
        var edgeDeadlineMs = 10_000
        var edgeMaxBatch = 64
        var edgeLimits = "{idleTimeoutMs: 30000}"
        /// The device sends its raw input and the edge runs the device's stage too.
        var edgeHostsTheDeviceStage = false
        /// The cloud's replicas (none: it listens on one address).
        var cloudReplicas: [Int] = []
        /// The cloud's address when it runs as one process.
        var cloudPort = 7_002
        /// A host name that resolves to the cloud's replicas (instead of a list).
        var cloudReplicasName: String? = nil
    }

    static func yaml(_ fixture: Fixture, _ s: Setup) -> String {
        let device = s.edgeHostsTheDeviceStage ? "stages: []" : "stages: [device]\n    thresholds: [0.1]"
        let edgeStages = s.edgeHostsTheDeviceStage ? "stages: [device, edge]\n    thresholds: [0.1, \(s.edgeThreshold)]"
            : "stages: [edge]\n    thresholds: [\(s.edgeThreshold)]"
        var cloud = s.cloudReplicas.isEmpty ? "listen: 127.0.0.1:\(s.cloudPort)"
            : "replicas:\n" + s.cloudReplicas.map { "      - 127.0.0.1:\($0)" }.joined(separator: "\n")
        if let name = s.cloudReplicasName { cloud = "listen: 0.0.0.0:\(s.cloudPort)\n    replicas: \(name):\(s.cloudPort)" }
        return """
            model: \(fixture.modelDirectory.path)
            certs: \(fixture.certs.path)
            nodes:
              - name: device
                role: device
                \(device)
                upstream: edge
                codec: int8
              - name: edge
                role: edge
                \(edgeStages)
                listen: 127.0.0.1:\(s.edgePort)
                upstream: cloud
                codec: \(s.edgeCodec)
                deadlineMs: \(s.edgeDeadlineMs)
                maxBatch: \(s.edgeMaxBatch)
                limits: \(s.edgeLimits)
              - name: cloud
                role: cloud
                stages: [cloud]
                \(cloud)

            """
    }

    /// A topology file written from `setup`, the server of `node` loaded from it (not started: a
    /// reload needs no socket), with its metrics.
    final class Harness: @unchecked Sendable {
        let fixture: Fixture
        let url: URL
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        let server: InferenceServer
        let metrics: NodeMetrics

        init(_ setup: Setup = Setup(), node: String = "edge", replica: Int? = nil) throws {
            fixture = try Fixture.shared()
            url = fixture.root.appendingPathComponent("topologies/reload-\(UUID().uuidString).yaml")
            try ReloadTests.yaml(fixture, setup).write(to: url, atomically: true, encoding: .utf8)
            let context = try NodeContext.load(topologyPath: url.path, nodeName: node, replica: replica)
            metrics = NodeMain.metrics(for: context)
            server = try InferenceServer(context: context, group: group, pool: pool, logger: testLogger(node), metrics: metrics)
        }

        func rewrite(_ setup: Setup) throws { try ReloadTests.yaml(fixture, setup).write(to: url, atomically: true, encoding: .utf8) }

        func reload() throws -> String { try server.reload(topologyPath: url.path) }

        var text: MetricsText { MetricsText(metrics.registry.emitToString()) }
        var applied: Double? { text.value(#"branchy_config_reloads_total{result="applied"}"#) }
        var refused: Double? { text.value(#"branchy_config_reloads_total{result="refused"}"#) }
        var edgeThresholdGauge: Double? { text.value(#"branchy_exit_threshold{exit="edge-exit"}"#) }

        func shutdown() async {
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
        }
    }

    @Test func aChangedThresholdIsApplied() async throws {
        let harness = try Harness()
        let started = harness.server.context
        #expect(harness.server.current.policy.thresholds[1] == 0.2)
        #expect(harness.edgeThresholdGauge == Double(Float(0.2)))

        try harness.rewrite(Setup(edgeThreshold: "0.35"))
        let changes = try harness.reload()

        #expect(changes == "thresholds \(started.policy.thresholds) -> \(harness.server.current.policy.thresholds)")
        #expect(harness.server.current.policy.thresholds[1] == 0.35)
        #expect(harness.server.runner.policy.thresholds[1] == 0.35, "the next requests run with the new thresholds")
        #expect(harness.server.context === started, "the context the server started with stays as it was")
        #expect(started.policy.thresholds[1] == 0.2)
        #expect(harness.edgeThresholdGauge == Double(Float(0.35)))
        #expect(harness.applied == 1)
        #expect(harness.refused == 0)
        await harness.shutdown()
    }

    @Test func linkSettingsAndTimeoutsAreApplied() async throws {
        let harness = try Harness()
        try harness.rewrite(Setup(edgeCodec: "float16", edgeDeadlineMs: 2_500, edgeLimits: "{idleTimeoutMs: 5000, handshakeTimeoutMs: 700}"))
        let changes = try harness.reload()
        #expect(changes.contains("codec int8 -> float16"), "\(changes)")
        #expect(changes.contains("deadlineMs 10000 -> 2500"), "\(changes)")
        #expect(changes.contains("limits"), "\(changes)")
        #expect(!changes.contains("thresholds"), "\(changes)")
        let config = harness.server.current.config
        #expect(config.codec == "float16" && config.deadlineMillis == 2_500)
        #expect(harness.server.limits.idleTimeoutMillis == 5_000 && harness.server.limits.handshakeTimeoutMillis == 700)
        #expect(harness.applied == 1)
        await harness.shutdown()
    }

    @Test func anUnchangedTopologyReloadsWithNoChanges() async throws {
        let harness = try Harness()
        #expect(try harness.reload() == "no changes")
        #expect(harness.applied == 1 && harness.refused == 0)
        await harness.shutdown()
    }

    @Test func aChangedListenAddressIsRefused() async throws {
        let harness = try Harness()
        let before = harness.server.current
        try harness.rewrite(Setup(edgeThreshold: "0.35", edgePort: 7_001))
        let error = #expect(throws: NodeError.self) { try harness.reload() }
        #expect(error?.description == "node 'edge': the new topology changes listen, which takes a restart", "\(String(describing: error))")
        #expect(harness.server.current === before, "the old context stays, thresholds included")
        #expect(harness.server.current.policy.thresholds[1] == 0.2)
        #expect(harness.edgeThresholdGauge == Double(Float(0.2)))
        #expect(harness.refused == 1)
        #expect(harness.applied == 0)
        await harness.shutdown()
    }

    @Test func everyKeyThatNeedsARestartIsNamed() async throws {
        let harness = try Harness()
        try harness.rewrite(Setup(edgePort: 7_001, edgeMaxBatch: 8, edgeLimits: "{idleTimeoutMs: 30000, maxConnections: 100}"))
        let error = #expect(throws: NodeError.self) { try harness.reload() }
        #expect(error?.description.contains(
            "changes listen, maxBatch, limits (other than handshakeTimeoutMs and idleTimeoutMs), which takes a restart") == true,
                "\(String(describing: error))")
        #expect(harness.refused == 1)
        await harness.shutdown()
    }

    @Test func changedStagesAreRefused() async throws {
        let harness = try Harness()
        let before = harness.server.current
        // A valid topology in which the edge also runs the device's stage.
        try harness.rewrite(Setup(edgeHostsTheDeviceStage: true))
        let error = #expect(throws: NodeError.self) { try harness.reload() }
        #expect(error?.description.contains("the new topology changes stages, which takes a restart") == true, "\(String(describing: error))")
        #expect(harness.server.current === before)
        #expect(harness.server.current.config.stages == ["edge"])
        #expect(harness.refused == 1)
        await harness.shutdown()
    }

    @Test func checkReloadableNamesTheKey() async throws {
        let harness = try Harness()
        let old = harness.server.context
        func changed(_ change: (inout NodeConfig) -> Void) throws -> NodeContext {
            var config = old.config
            change(&config)
            return try NodeContext(topology: old.topology, config: config, model: old.model)
        }
        try InferenceServer.checkReloadable(from: old, to: old)
        try InferenceServer.checkReloadable(from: old, to: try changed { $0.thresholds = [0.9]; $0.limits.idleTimeoutMillis = 1 })
        let cases: [(String, (inout NodeConfig) -> Void)] = [
            ("stages", { $0.stages = ["edge", "cloud"] }),
            ("listen", { $0.listen = Endpoint(host: "127.0.0.1", port: 1) }),
            ("address", { $0.address = Endpoint(host: "edge.example", port: 7000) }),
            ("metrics", { $0.metrics = Endpoint(host: "127.0.0.1", port: 9100) }),
            ("protocol", { $0.protocolVersion = 1 }),
            ("maxBatchDelayMicros", { $0.maxBatchDelayMicros = 0 }),
            ("limits (other than handshakeTimeoutMs and idleTimeoutMs)", { $0.limits.maxConnectionsPerPeer = 3 }),
        ]
        for (key, change) in cases {
            let error = #expect(throws: NodeError.self, "\(key)") { try InferenceServer.checkReloadable(from: old, to: try changed(change)) }
            #expect(error?.description.contains("changes \(key), which takes a restart") == true, "\(String(describing: error))")
        }
        await harness.shutdown()
    }

    @Test(arguments: ["nodes: [\n  - {name: edge", "model: m\n", ""])
    func aTopologyThatDoesNotLoadIsRefused(text: String) async throws {
        let harness = try Harness()
        let before = harness.server.current
        try text.write(to: harness.url, atomically: true, encoding: .utf8)
        #expect(throws: TopologyError.self) { try harness.reload() }
        #expect(harness.server.current === before)
        #expect(harness.refused == 1 && harness.applied == 0)
        await harness.shutdown()
    }

    @Test func aMissingFileIsRefused() async throws {
        let harness = try Harness()
        try FileManager.default.removeItem(at: harness.url)
        #expect(throws: TopologyError.self) { try harness.reload() }
        #expect(harness.refused == 1)
        await harness.shutdown()
    }

    @Test func theUpstreamsReplicasMayChange() async throws {
        let harness = try Harness(Setup(cloudReplicas: [7_002, 7_012]))
        try harness.rewrite(Setup(cloudReplicas: [7_002, 7_022, 7_032]))
        let changes = try harness.reload()
        #expect(changes == "upstream addresses [\"127.0.0.1:7002\", \"127.0.0.1:7012\"] -> "
                    + "[\"127.0.0.1:7002\", \"127.0.0.1:7022\", \"127.0.0.1:7032\"]", "\(changes)")
        #expect(harness.server.current.upstream?.dialAddresses.map(\.port) == [7_002, 7_022, 7_032])
        await harness.shutdown()
    }

    @Test func aNewAddressOfTheUpstreamIsApplied() async throws {
        let harness = try Harness()
        try harness.rewrite(Setup(cloudPort: 7_003))
        let changes = try harness.reload()
        #expect(changes == "upstream addresses [\"127.0.0.1:7002\"] -> [\"127.0.0.1:7003\"]", "\(changes)")
        #expect(harness.server.current.upstream?.dialAddress?.port == 7_003)
        await harness.shutdown()
    }

    @Test func aChangedReplicasHostNameIsRefused() async throws {
        let harness = try Harness(Setup(cloudReplicasName: "localhost"))
        try harness.rewrite(Setup(cloudReplicasName: "localhost.localdomain"))
        let error = #expect(throws: NodeError.self) { try harness.reload() }
        #expect(error?.description.contains("the upstream's replicas host name") == true, "\(String(describing: error))")
        #expect(harness.server.current.upstream?.replicas == .resolved(Endpoint(host: "localhost", port: 7_002)))
        await harness.shutdown()
    }

    @Test func aReplicaReloadsAsTheSameReplica() async throws {
        let harness = try Harness(Setup(cloudReplicas: [7_002, 7_012]), node: "cloud", replica: 1)
        #expect(harness.server.context.config.listen == Endpoint(host: "127.0.0.1", port: 7_012))
        #expect(try harness.reload() == "no changes")
        #expect(harness.server.current.replica == 1)
        #expect(harness.server.current.config.listen == Endpoint(host: "127.0.0.1", port: 7_012))
        // The replica's own address is its listen address: moving it takes a restart.
        try harness.rewrite(Setup(cloudReplicas: [7_002, 7_013]))
        let error = #expect(throws: NodeError.self) { try harness.reload() }
        #expect(error?.description.contains("changes listen") == true, "\(String(describing: error))")
        await harness.shutdown()
    }
}
