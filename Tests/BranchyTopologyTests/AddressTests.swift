import Foundation
import Testing
@testable import BranchyTopology

/// `address:`, the address children dial, apart from `listen:`, the address a node binds.
@Suite("Bind and dial addresses")
struct AddressTests {
    /// The three-tier fixture with the edge bound to every interface.
    let edgeOnWildcard = replacing("listen: 127.0.0.1:7401", with: "listen: 0.0.0.0:7401")

    @Test(arguments: [
        ("edge.example:7401", "edge.example", 7401),
        ("10.77.1.2:7401", "10.77.1.2", 7401),
        ("edge:9000", "edge", 9000),
        ("'[fd00::2]:7401'", "fd00::2", 7401),
    ])
    func addressIsRead(text: String, host: String, port: Int) throws {
        let yaml = replacing("listen: 0.0.0.0:7401", with: "listen: 0.0.0.0:7401\n    address: \(text)", in: edgeOnWildcard)
        let edge = try #require(try loadValid(yaml).node(named: "edge"))
        #expect(edge.listen == Endpoint(host: "0.0.0.0", port: 7401))
        #expect(edge.address == Endpoint(host: host, port: port))
        #expect(edge.dialAddress == Endpoint(host: host, port: port))
    }

    @Test func withoutAddressChildrenDialListen() throws {
        let topology = try loadValid(validThreeTier)
        for name in ["edge", "cloud"] {
            let node = try #require(topology.node(named: name))
            #expect(node.address == nil)
            #expect(node.dialAddress == node.listen)
        }
        #expect(topology.node(named: "device")?.dialAddress == nil)
    }

    @Test(arguments: ["0.0.0.0:7401", "'[::]:7401'", "'[0:0::0]:7401'"])
    func wildcardListenWithChildrenNeedsAddress(listen: String) throws {
        let error = try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: \(listen)"), keyPath: "nodes[1].listen",
                                    reason: "edge 'edge' listens on", "children cannot dial", "give 'address:'")
        #expect(error?.line == 13)
    }

    @Test func wildcardMessageNamesTheHost() throws {
        let error = try expectError(edgeOnWildcard, keyPath: "nodes[1].listen",
                                    reason: "children cannot dial 0.0.0.0; give 'address:'")
        #expect(error?.description.hasSuffix("(line 13)") == true, "\(String(describing: error))")
    }

    @Test func wildcardListenWithoutChildrenIsValid() throws {
        // No node names 'spare' as its upstream, so nobody needs to dial it.
        let yaml = """
            model: m
            nodes:
              - {name: solo, role: device, stages: [device, edge, cloud], thresholds: [0.2, 0.5]}
              - {name: spare, role: cloud, stages: [device, edge, cloud], thresholds: [0.2, 0.5], listen: "0.0.0.0:7402"}
            """
        let spare = try #require(try loadValid(yaml).node(named: "spare"))
        #expect(spare.dialAddress == Endpoint(host: "0.0.0.0", port: 7402))
    }

    @Test func wildcardListenWithAddressIsValid() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: '[::]:7402'\n    address: cloud.example:7402",
                             in: edgeOnWildcard.replacingOccurrences(of: "listen: 0.0.0.0:7401",
                                                                     with: "listen: 0.0.0.0:7401\n    address: 10.77.1.2:7401"))
        let topology = try loadValid(yaml)
        #expect(topology.node(named: "edge")?.dialAddress?.description == "10.77.1.2:7401")
        #expect(topology.node(named: "cloud")?.dialAddress?.description == "cloud.example:7402")
        #expect(topology.node(named: "cloud")?.listen?.description == "[::]:7402")
    }

    @Test func addressMustNotBeAWildcard() throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    address: 0.0.0.0:7401"),
                        keyPath: "nodes[1].address", reason: "nobody can dial 0.0.0.0")
    }

    @Test func deviceMustNotHaveAnAddress() throws {
        let error = try expectError(replacing("upstream: edge", with: "upstream: edge\n    address: device.example:7400"),
                                    keyPath: "nodes[0].address", reason: "device 'device' must not have an address")
        #expect(error?.line == 9)
    }

    @Test(arguments: [
        ("bad_host:7401", "'bad_host' is not a valid host name"),
        ("edge.example", "missing port; expected host:port"),
        ("'edge..example:7401'", "'edge..example' is not a valid host name"),
        ("'-edge:7401'", "'-edge' is not a valid host name"),
        ("300.1.2.3:7401", "'300.1.2.3' is not an IPv4 address"),
        ("'fd00::2:7401'", "IPv6 addresses must be written in brackets"),
        ("'[fd00::zz]:7401'", "'fd00::zz' is not an IPv6 address"),
        ("edge.example:70000", "port 70000 is out of range 1...65535"),
    ])
    func badAddress(address: String, reason: String) throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    address: \(address)"),
                        keyPath: "nodes[1].address", reason: "bad address", reason)
    }

    @Test func twoNodesDialledAtOneAddress() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: 0.0.0.0:7402\n    address: 127.0.0.1:7401")
        try expectError(yaml, keyPath: "nodes[2].address", reason: "address 127.0.0.1:7401 is already used by node 'edge'")
    }

    @Test func nodesOnSeveralHostsMayBindTheSameWildcard() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: 0.0.0.0:7401\n    address: cloud.example:7401",
                             in: edgeOnWildcard.replacingOccurrences(of: "listen: 0.0.0.0:7401",
                                                                     with: "listen: 0.0.0.0:7401\n    address: edge.example:7401"))
        let topology = try loadValid(yaml)
        #expect(topology.nodes.compactMap(\.dialAddress).map(\.description) == ["edge.example:7401", "cloud.example:7401"])
    }

    @Test(arguments: [
        ("0.0.0.0", true), ("::", true), ("0:0:0:0:0:0:0:0", true), ("::0", true),
        ("127.0.0.1", false), ("::1", false), ("10.0.0.0", false), ("localhost", false), ("0.example", false),
    ])
    func wildcardHosts(host: String, unspecified: Bool) {
        #expect(Endpoint(host: host, port: 1).isUnspecified == unspecified)
    }
}
