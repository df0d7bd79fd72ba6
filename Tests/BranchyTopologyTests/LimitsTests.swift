import Foundation
import Testing
@testable import BranchyTopology

/// The `limits:` mapping of listening nodes and the top-level `dataset:` key.
@Suite struct LimitsTests {
    @Test func omittedLimitsAreTheDefaults() throws {
        let topology = try loadValid(validThreeTier)
        #expect(topology.node(named: "edge")?.limits == ServerLimits())
        #expect(ServerLimits().handshakeTimeoutMillis == 10_000)
        #expect(ServerLimits().idleTimeoutMillis == 300_000)
    }

    @Test func limitsAreRead() throws {
        let yaml = replacing("listen: 127.0.0.1:7401", with: """
            listen: 127.0.0.1:7401
                limits:
                  handshakeTimeoutMs: 1500
                  idleTimeoutMs: 2000
                  maxConnections: 40
                  maxConnectionsPerPeer: 2
                  inputBudgetBytes: 1048576
                  peerInputBudgetBytes: 524288
            """)
        let limits = try #require(try loadValid(yaml).node(named: "edge")?.limits)
        #expect(limits == ServerLimits(handshakeTimeoutMillis: 1500, idleTimeoutMillis: 2000, maxConnections: 40,
                                       maxConnectionsPerPeer: 2, inputBudgetBytes: 1 << 20, peerInputBudgetBytes: 1 << 19))
    }

    @Test(arguments: ["handshakeTimeoutMs: 0", "idleTimeoutMs: 99", "maxConnections: 0",
                      "maxConnectionsPerPeer: 1000000000", "inputBudgetBytes: 1024"])
    func limitsOutOfRangeAreRefused(setting: String) throws {
        let key = String(setting.split(separator: ":")[0])
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    limits:\n      \(setting)"),
                        keyPath: "nodes[1].limits.\(key)", reason: "from", "got")
    }

    @Test func unknownLimitIsRefused() throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    limits:\n      idleTimeout: 5"),
                        keyPath: "nodes[1].limits.idleTimeout", reason: "idleTimeoutMs")
    }

    @Test func peerBudgetAboveNodeBudgetIsRefused() throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: """
            listen: 127.0.0.1:7401
                limits:
                  inputBudgetBytes: 1048576
                  peerInputBudgetBytes: 2097152
            """), keyPath: "nodes[1].limits.peerInputBudgetBytes", reason: "must not exceed inputBudgetBytes")
    }

    @Test func devicesHaveNoLimits() throws {
        try expectError(replacing("upstream: edge", with: "upstream: edge\n    limits:\n      maxConnections: 4"),
                        keyPath: "nodes[0].limits", reason: "accepts no connections")
    }

    @Test func datasetResolvesAgainstTheTopologyFile() throws {
        let topology = try loadValid("dataset: ../data/fashion-mnist\n" + validThreeTier)
        let expected = topology.fileURL.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("data/fashion-mnist").standardizedFileURL
        #expect(topology.dataset == expected)
        #expect(try loadValid(validThreeTier).dataset == nil)
    }
}
