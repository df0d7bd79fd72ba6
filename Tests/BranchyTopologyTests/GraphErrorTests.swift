import Foundation
import Testing
@testable import BranchyTopology

/// Errors in how nodes relate: names, roles, upstream links and listen addresses.
@Suite("Nodes, roles and links")
struct GraphErrorTests {
    @Test func duplicateNodeName() throws {
        try expectError(replacing("name: edge", with: "name: device"), keyPath: "nodes[1].name",
                        reason: "duplicate node name 'device' (first used by nodes[0])")
    }

    @Test func unknownUpstreamNode() throws {
        let yaml = replacing("upstream: edge", with: "upstream: edge9")
        let error = try expectError(yaml, keyPath: "nodes[0].upstream", reason: "unknown node 'edge9'")
        #expect(error?.description.hasSuffix("nodes[0].upstream: unknown node 'edge9' (line 8)") == true)
    }

    @Test func nodeIsItsOwnUpstream() throws {
        try expectError(replacing("upstream: cloud", with: "upstream: edge"), keyPath: "nodes[1].upstream",
                        reason: "node 'edge' cannot be its own upstream")
    }

    @Test func upstreamCycle() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device], thresholds: [0.1], upstream: edge-a}
              - {name: edge-a, role: edge, stages: [edge], thresholds: [0.1], listen: "127.0.0.1:1", upstream: edge-b}
              - {name: edge-b, role: edge, stages: [edge], thresholds: [0.1], listen: "127.0.0.1:2", upstream: edge-a}
            """
        try expectError(yaml, keyPath: "nodes[0].upstream", reason: "upstream cycle: d -> edge-a -> edge-b -> edge-a")
    }

    @Test func deviceMustNotListen() throws {
        try expectError(replacing("upstream: edge", with: "upstream: edge\n    listen: 127.0.0.1:7400"),
                        keyPath: "nodes[0].listen", reason: "device 'device' must not have a listen address")
    }

    @Test func deviceWithoutUpstreamMustHostTheLastStage() throws {
        try expectError(replacing("    upstream: edge\n", with: ""), keyPath: "nodes[0].upstream",
                        reason: "device 'device' does not host the model's last stage 'cloud', so it needs an upstream")
    }

    @Test func standaloneDeviceHostingEveryStageIsValid() throws {
        let yaml = """
            model: m
            nodes:
              - name: solo
                role: device
                stages: [device, edge, cloud]
                thresholds: [0.2, 0.5]
            """
        let topology = try loadValid(yaml)
        #expect(topology.nodes.first?.isRoot == true)
        #expect(topology.pathToRoot(from: "solo").map(\.name) == ["solo"])
    }

    @Test func edgeNeedsListen() throws {
        try expectError(replacing("    listen: 127.0.0.1:7401\n", with: ""), keyPath: "nodes[1].listen",
                        reason: "edge 'edge' needs a listen address (host:port), or listed replicas")
    }

    @Test func edgeNeedsUpstream() throws {
        try expectError(replacing("    upstream: cloud\n", with: ""), keyPath: "nodes[1].upstream",
                        reason: "edge 'edge' needs an upstream")
    }

    @Test func cloudMustNotHaveUpstream() throws {
        try expectError(replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7402\n    upstream: edge"),
                        keyPath: "nodes[2].upstream", reason: "cloud 'cloud' must not have an upstream")
    }

    @Test func cloudNeedsListen() throws {
        try expectError(replacing("    listen: 127.0.0.1:7402", with: ""), keyPath: "nodes[2].listen",
                        reason: "cloud 'cloud' needs a listen address (host:port), or listed replicas")
    }

    @Test func linkSettingsNeedAnUpstream() throws {
        try expectError(replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7402\n    codec: int8"),
                        keyPath: "nodes[2].codec", reason: "'codec' configures the link to the upstream node, but cloud 'cloud' has no upstream")
    }

    @Test func deviceUpstreamMustNotBeADevice() throws {
        let yaml = replacing("  - name: edge\n", with: """
              - name: device-2
                role: device
                stages: [device]
                thresholds: [0.3]
                upstream: device
              - name: edge

            """)
        try expectError(yaml, keyPath: "nodes[1].upstream",
                        reason: "device 'device-2' cannot use device 'device' as upstream", "a device's upstream must be an edge or a cloud")
    }

    @Test func edgeUpstreamMustBeACloud() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device], thresholds: [0.1], upstream: edge-a}
              - {name: edge-a, role: edge, stages: [edge], thresholds: [0.1], listen: "127.0.0.1:1", upstream: edge-b}
              - {name: edge-b, role: edge, stages: [edge], thresholds: [0.1], listen: "127.0.0.1:2", upstream: cloud}
              - {name: cloud, role: cloud, stages: [cloud], listen: "127.0.0.1:3"}
            """
        try expectError(yaml, keyPath: "nodes[1].upstream",
                        reason: "edge 'edge-a' cannot use edge 'edge-b' as upstream", "an edge's upstream must be a cloud")
    }

    @Test func deviceMayTalkToTheCloudDirectly() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device, edge], thresholds: [0.1, 0.2], upstream: c, codec: float16}
              - {name: c, role: cloud, stages: [cloud], listen: "[::1]:7402"}
            """
        let topology = try loadValid(yaml)
        #expect(topology.node(named: "c")?.listen == Endpoint(host: "::1", port: 7402))
        #expect(topology.node(named: "d")?.codec == "float16")
    }

    @Test func noDeviceIsAnError() throws {
        try expectError("model: m\nnodes:\n  - {name: c, role: cloud, stages: [cloud], listen: 'localhost:1'}\n",
                        keyPath: "nodes", reason: "no node has role device")
    }

    @Test(arguments: [
        ("127.0.0.1", "missing port; expected host:port"),
        ("'127.0.0.1:'", "missing port after ':'"),
        ("127.0.0.1:0", "port 0 is out of range 1...65535"),
        ("127.0.0.1:65536", "port 65536 is out of range 1...65535"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:-5", "port '-5' is not a number"),
        ("300.1.2.3:7401", "'300.1.2.3' is not an IPv4 address"),
        ("'::1:7401'", "IPv6 addresses must be written in brackets"),
        ("'[::1]'", "missing port; expected [ipv6]:port"),
        ("bad_host:7401", "'bad_host' is not a valid host name"),
    ])
    func badListenAddress(address: String, reason: String) throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: \(address)"), keyPath: "nodes[1].listen",
                        reason: "bad address", reason)
    }

    @Test func twoNodesOnOneAddress() throws {
        try expectError(replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7401"), keyPath: "nodes[2].listen",
                        reason: "address 127.0.0.1:7401 is already used by node 'edge'")
    }
}
