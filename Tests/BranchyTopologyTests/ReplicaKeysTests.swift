import Foundation
import Testing
@testable import BranchyTopology

/// `replicas:` (the processes that run one node) and `metrics:` (where a node serves its
/// operations endpoint), and how they meet `listen:` and `address:`.
@Suite("Replicas and metrics addresses")
struct ReplicaKeysTests {
    /// The three-tier fixture with the cloud's `listen:` line replaced by `lines` (each indented as a node key).
    func cloud(_ lines: String...) -> String {
        replacing("    listen: 127.0.0.1:7402", with: lines.map { "    " + $0 }.joined(separator: "\n"))
    }

    // MARK: - Reading replicas

    @Test func aListOfAddresses() throws {
        let topology = try loadValid(cloud("replicas:", "  - 127.0.0.1:7472", "  - cloud-b.example:7482"))
        let node = try #require(topology.node(named: "cloud"))
        let a = Endpoint(host: "127.0.0.1", port: 7472), b = Endpoint(host: "cloud-b.example", port: 7482)
        #expect(node.replicas == .listed([Replica(address: a), Replica(address: b)]))
        #expect(node.replicas?.listed.map(\.address) == [a, b])
        #expect(node.isReplicated)
        #expect(node.listen == nil)
        #expect(node.dialAddress == nil)
        #expect(node.dialAddresses == [a, b])
    }

    @Test func aListOfMappings() throws {
        let topology = try loadValid(cloud("metrics: 127.0.0.1:8402",
                                           "replicas:",
                                           "  - address: 127.0.0.1:7472",
                                           "    metrics: 127.0.0.1:8472",
                                           "  - {address: '127.0.0.1:7482'}"))
        let node = try #require(topology.node(named: "cloud"))
        #expect(node.replicas == .listed([
            Replica(address: Endpoint(host: "127.0.0.1", port: 7472), metrics: Endpoint(host: "127.0.0.1", port: 8472)),
            Replica(address: Endpoint(host: "127.0.0.1", port: 7482)),
        ]))
        #expect(node.metrics == Endpoint(host: "127.0.0.1", port: 8402))
        #expect(node.dialAddresses.map(\.description) == ["127.0.0.1:7472", "127.0.0.1:7482"])
    }

    @Test func oneAddressThatResolvesToEveryReplica() throws {
        let topology = try loadValid(cloud("listen: 0.0.0.0:7402", "replicas: cloud.example:7402"))
        let node = try #require(topology.node(named: "cloud"))
        #expect(node.replicas == .resolved(Endpoint(host: "cloud.example", port: 7402)))
        #expect(node.replicas?.listed == [])
        #expect(node.isReplicated)
        #expect(node.listen == Endpoint(host: "0.0.0.0", port: 7402))
        // Children dial the name (and resolve it), not the wildcard they would otherwise be refused.
        #expect(node.dialAddresses == [Endpoint(host: "cloud.example", port: 7402)])
        #expect(node.replica(0) == nil)
    }

    @Test func withoutReplicasChildrenDialTheOneAddress() throws {
        let topology = try loadValid(validThreeTier)
        let cloud = try #require(topology.node(named: "cloud"))
        #expect(cloud.replicas == nil)
        #expect(!cloud.isReplicated)
        #expect(cloud.dialAddresses == [Endpoint(host: "127.0.0.1", port: 7402)])
        #expect(cloud.replica(0) == nil)
        #expect(topology.node(named: "device")?.dialAddresses == [])
    }

    // MARK: - NodeConfig.replica(_:)

    @Test func aReplicaBindsItsOwnAddressWhenTheNodeHasNoListen() throws {
        let topology = try loadValid(cloud("metrics: 127.0.0.1:8402",
                                           "replicas:",
                                           "  - {address: '127.0.0.1:7472', metrics: '127.0.0.1:8472'}",
                                           "  - 127.0.0.1:7482"))
        let node = try #require(topology.node(named: "cloud"))
        let first = try #require(node.replica(0))
        #expect(first.listen == Endpoint(host: "127.0.0.1", port: 7472))
        #expect(first.metrics == Endpoint(host: "127.0.0.1", port: 8472))
        let second = try #require(node.replica(1))
        #expect(second.listen == Endpoint(host: "127.0.0.1", port: 7482))
        #expect(second.metrics == Endpoint(host: "127.0.0.1", port: 8402), "falls back to the node's metrics")
        // Everything else is the node's.
        #expect(second.name == "cloud" && second.stages == ["cloud"] && second.replicas == node.replicas)
        #expect(node.replica(2) == nil)
        #expect(node.replica(-1) == nil)
    }

    @Test func aReplicaBindsTheNodesListenWhenThereIsOne() throws {
        let topology = try loadValid(cloud("listen: 0.0.0.0:7402", "replicas: ['cloud-a.example:7402', 'cloud-b.example:7402']"))
        let node = try #require(topology.node(named: "cloud"))
        for i in 0..<2 {
            let replica = try #require(node.replica(i))
            #expect(replica.listen == Endpoint(host: "0.0.0.0", port: 7402))
            #expect(replica.metrics == nil)
        }
    }

    // MARK: - Replica errors

    @Test func anEmptyListIsRefused() throws {
        try expectError(cloud("listen: 127.0.0.1:7402", "replicas: []"), keyPath: "nodes[2].replicas",
                        reason: "the list is empty; give one address per replica, or omit 'replicas'")
    }

    @Test(arguments: ["0.0.0.0:7482", "'[::]:7482'"])
    func aWildcardReplicaAddressIsRefused(address: String) throws {
        let error = try expectError(cloud("replicas:", "  - 127.0.0.1:7472", "  - \(address)"), keyPath: "nodes[2].replicas[1]",
                                    reason: "cloud 'cloud': replica 1 is dialled at", "and nobody can dial",
                                    "give the host name or IP of the replica")
        #expect(error?.line == 19)
    }

    @Test func aWildcardResolvedNameIsRefused() throws {
        try expectError(cloud("listen: 0.0.0.0:7402", "replicas: 0.0.0.0:7402"), keyPath: "nodes[2].replicas",
                        reason: "cloud 'cloud': nobody can dial 0.0.0.0; give a host name that resolves to the replicas")
    }

    @Test func aDeviceCannotHaveReplicas() throws {
        try expectError(replacing("upstream: edge", with: "upstream: edge\n    replicas: ['127.0.0.1:7470']"), keyPath: "nodes[0].replicas",
                        reason: "device 'device' cannot have replicas; nothing dials a device")
    }

    @Test func replicasAndAddressTogetherAreRefused() throws {
        try expectError(cloud("listen: 0.0.0.0:7402", "address: cloud.example:7402", "replicas: ['127.0.0.1:7472', '127.0.0.1:7482']"),
                        keyPath: "nodes[2].address",
                        reason: "cloud 'cloud' has 'replicas', which give the addresses its children dial; drop 'address'")
    }

    @Test func aResolvedSetNeedsListen() throws {
        try expectError(cloud("replicas: cloud.example:7402"), keyPath: "nodes[2].listen",
                        reason: "cloud 'cloud' has replicas found by resolving cloud.example, so each needs 'listen:' to bind",
                        "(e.g. listen: 0.0.0.0:7402)")
    }

    @Test func aListedSetWithoutListenIsValid() throws {
        let topology = try loadValid(replacing("    listen: 127.0.0.1:7401", with: "    replicas: ['127.0.0.1:7471', '127.0.0.1:7481']"))
        #expect(topology.node(named: "edge")?.listen == nil)
        #expect(topology.node(named: "edge")?.replica(1)?.listen == Endpoint(host: "127.0.0.1", port: 7481))
    }

    @Test func aReplicaAddressUsedTwiceByTheNodeIsRefused() throws {
        try expectError(cloud("replicas: ['127.0.0.1:7472', '127.0.0.1:7472']"), keyPath: "nodes[2].replicas",
                        reason: "address 127.0.0.1:7472 is already used by another replica of this node")
    }

    @Test func aReplicaAddressOfAnotherNodeIsRefused() throws {
        try expectError(cloud("replicas: ['127.0.0.1:7472', '127.0.0.1:7401']"), keyPath: "nodes[2].replicas",
                        reason: "address 127.0.0.1:7401 is already used by node 'edge'")
    }

    @Test func replicaAddressesCompareHostsWithoutCase() throws {
        let yaml = replacing("    listen: 127.0.0.1:7401", with: "    replicas: ['Edge.example:7401']",
                             in: cloud("replicas: ['edge.EXAMPLE:7401']"))
        try expectError(yaml, keyPath: "nodes[2].replicas", reason: "is already used by node 'edge'")
    }

    @Test func anUnknownKeyInAReplicaIsRefused() throws {
        try expectError(cloud("replicas:", "  - {address: '127.0.0.1:7472', port: 7472}"), keyPath: "nodes[2].replicas[0].port",
                        reason: "unknown key 'port'", "(allowed: address, metrics)")
    }

    @Test func aReplicaMappingNeedsAnAddress() throws {
        try expectError(cloud("replicas:", "  - {metrics: '127.0.0.1:8472'}"), keyPath: "nodes[2].replicas[0].address",
                        reason: "missing required key 'address'")
    }

    @Test(arguments: [
        ("replicas: ['127.0.0.1:7472', cloud-b]", "nodes[2].replicas[1]", "missing port"),
        ("replicas: [{address: 'bad_host:7472'}]", "nodes[2].replicas[0].address", "'bad_host' is not a valid host name"),
        ("replicas: [{address: '127.0.0.1:7472', metrics: '127.0.0.1:99999'}]", "nodes[2].replicas[0].metrics", "port 99999 is out of range"),
        ("replicas: [['127.0.0.1:7472']]", "nodes[2].replicas[0]", "expected a string, got a list"),
    ])
    func aBadReplicaEntryNamesItsPlace(setting: String, keyPath: String, reason: String) throws {
        try expectError(cloud(setting), keyPath: keyPath, reason: reason)
    }

    @Test func aValueThatIsNeitherAListNorAnAddressIsRefused() throws {
        try expectError(cloud("listen: 127.0.0.1:7402", "replicas: {address: '127.0.0.1:7472'}"), keyPath: "nodes[2].replicas",
                        reason: "expected a list of HOST:PORT addresses (one per replica) or one HOST:PORT whose host resolves to every replica, "
                            + "got a mapping")
    }

    // MARK: - metrics:

    @Test func metricsIsRead() throws {
        let topology = try loadValid(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    metrics: 127.0.0.1:8401"))
        #expect(topology.node(named: "edge")?.metrics == Endpoint(host: "127.0.0.1", port: 8401))
        #expect(topology.node(named: "cloud")?.metrics == nil)
    }

    @Test func metricsMustNotBeTheNodesListenAddress() throws {
        let yaml = replacing("listen: 127.0.0.1:7401",
                             with: "listen: 127.0.0.1:7401\n    address: edge.example:7401\n    metrics: 127.0.0.1:7401")
        try expectError(yaml, keyPath: "nodes[1].metrics",
                        reason: "metrics address 127.0.0.1:7401 is also this node's listen address; give the metrics their own port")
    }

    @Test func metricsMustNotBeTheNodesWildcardListenAddress() throws {
        let yaml = replacing("listen: 127.0.0.1:7401",
                             with: "listen: 0.0.0.0:7401\n    address: edge.example:7401\n    metrics: 0.0.0.0:7401")
        try expectError(yaml, keyPath: "nodes[1].metrics", reason: "metrics address 0.0.0.0:7401 is also this node's listen address")
    }

    @Test(arguments: [("127.0.0.1:7401", "edge"), ("127.0.0.1:7402", "cloud")])
    func metricsMustNotBeWhereANodeTakesConnections(metrics: String, owner: String) throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    metrics: \(metrics)"),
                        keyPath: "nodes[1].metrics",
                        reason: "metrics address \(metrics) is also where node '\(owner)' takes connections")
    }

    @Test func aReplicasMetricsMustNotBeAReplicasAddress() throws {
        try expectError(cloud("replicas:", "  - {address: '127.0.0.1:7472', metrics: '127.0.0.1:7482'}", "  - 127.0.0.1:7482"),
                        keyPath: "nodes[2].metrics", reason: "metrics address 127.0.0.1:7482 is also where node 'cloud' takes connections")
    }

    @Test func twoNodesCannotShareAMetricsAddress() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7402\n    metrics: 127.0.0.1:8401",
                             in: replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    metrics: 127.0.0.1:8401"))
        try expectError(yaml, keyPath: "nodes[2].metrics", reason: "metrics address 127.0.0.1:8401 is already used by node 'edge'")
    }

    @Test func nodesOnSeveralHostsMayShareAWildcardMetricsBind() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7402\n    metrics: 0.0.0.0:9100",
                             in: replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    metrics: 0.0.0.0:9100"))
        let topology = try loadValid(yaml)
        #expect(topology.nodes.compactMap(\.metrics).map(\.description) == ["0.0.0.0:9100", "0.0.0.0:9100"])
    }

    @Test func replicasMayShareTheNodesMetricsAddress() throws {
        // Each replica on its own host binds the same metrics port.
        let topology = try loadValid(cloud("metrics: 127.0.0.1:9100", "replicas: ['cloud-a.example:7402', 'cloud-b.example:7402']"))
        let node = try #require(topology.node(named: "cloud"))
        #expect(node.replica(0)?.metrics == Endpoint(host: "127.0.0.1", port: 9100))
        #expect(node.replica(1)?.metrics == Endpoint(host: "127.0.0.1", port: 9100))
    }

    // MARK: - The shipped example and TLS files

    @Test func theShippedReplicasTopologyLoads() throws {
        let url = repositoryRoot.appendingPathComponent("topology/replicas.yaml")
        let topology = try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: false)
        let cloud = try #require(topology.node(named: "cloud"))
        #expect(cloud.dialAddresses.map(\.description) == ["127.0.0.1:7472", "127.0.0.1:7482"])
        #expect(cloud.replica(0)?.listen?.description == "127.0.0.1:7472")
        #expect(cloud.replica(1)?.metrics?.description == "127.0.0.1:8482")
        #expect(topology.node(named: "edge")?.metrics?.description == "127.0.0.1:8471")
    }

    @Test func filesOfChecksOnlyThatNodesTLSFiles() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let certs = folder.appendingPathComponent("certs")
        try FileManager.default.createDirectory(at: certs, withIntermediateDirectories: true)
        for file in ["ca.pem", "edge.pem", "edge-key.pem"] {
            try "x".write(to: certs.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let url = try writeTopology(validThreeTier, in: folder)
        let topology = try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: true, filesOf: "edge")
        #expect(topology.nodes.count == 3)

        let everyNode = #expect(throws: TopologyError.self) {
            try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: true)
        }
        #expect(everyNode?.keyPath == "nodes[0].tls.cert")
        let cloud = #expect(throws: TopologyError.self) {
            try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: true, filesOf: "cloud")
        }
        #expect(cloud?.keyPath == "nodes[2].tls.cert")
        #expect(cloud?.reason.contains("node 'cloud': TLS certificate file") == true, "\(String(describing: cloud))")
    }
}
