import Foundation
import Testing
@testable import BranchyTopology

/// The dynamic batcher's keys, `maxBatch` and `maxBatchDelayMicros`, of edges and clouds.
@Suite struct BatchingKeysTests {
    @Test func omittedKeysAreTheDefaults() throws {
        let edge = try #require(try loadValid(validThreeTier).node(named: "edge"))
        #expect(edge.maxBatch == NodeConfig.defaultMaxBatch)
        #expect(edge.maxBatchDelayMicros == NodeConfig.defaultMaxBatchDelayMicros)
        #expect(NodeConfig.defaultMaxBatch == 64)
        #expect(NodeConfig.defaultMaxBatchDelayMicros == 200)
    }

    @Test func keysAreRead() throws {
        let yaml = replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    maxBatch: 8\n    maxBatchDelayMicros: 0")
        let edge = try #require(try loadValid(yaml).node(named: "edge"))
        #expect(edge.maxBatch == 8)
        #expect(edge.maxBatchDelayMicros == 0)
    }

    @Test(arguments: ["maxBatch: 0", "maxBatch: 4097", "maxBatchDelayMicros: -1", "maxBatchDelayMicros: 1000001"])
    func valuesOutOfRangeAreRefused(setting: String) throws {
        let key = String(setting.split(separator: ":")[0])
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    \(setting)"),
                        keyPath: "nodes[1].\(key)", reason: "from", "got")
    }

    @Test func aNonIntegerIsRefused() throws {
        try expectError(replacing("listen: 127.0.0.1:7401", with: "listen: 127.0.0.1:7401\n    maxBatch: many"),
                        keyPath: "nodes[1].maxBatch", reason: "many")
    }

    @Test(arguments: ["maxBatch: 4", "maxBatchDelayMicros: 10"])
    func devicesDoNotBatch(setting: String) throws {
        let key = String(setting.split(separator: ":")[0])
        try expectError(replacing("upstream: edge", with: "upstream: edge\n    \(setting)"),
                        keyPath: "nodes[0].\(key)", reason: "does not apply")
    }
}
