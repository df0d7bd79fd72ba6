import Foundation
import Testing
@testable import BranchyTopology

/// Errors found while reading the file: syntax, keys and value types.
@Suite("Syntax, keys and types")
struct DocumentErrorTests {
    @Test func validFixtureLoads() throws {
        let topology = try loadValid(validThreeTier)
        #expect(topology.nodes.count == 3)
    }

    @Test func yamlSyntaxErrorGivesTheLine() throws {
        let yaml = """
            model: ../models/b-lenet3
            nodes:
              - name: device
                role: device
               stages: [device
            """
        let error = try expectError(yaml, keyPath: "", reason: "YAML syntax error")
        #expect(error?.line != nil)
        #expect(error?.description.contains("(line ") == true)
    }

    @Test func repeatedKeyIsAnError() throws {
        let yaml = replacing("    role: cloud\n", with: "    role: cloud\n    role: edge\n")
        try expectError(yaml, keyPath: "", reason: "'role' appears more than once")
    }

    @Test func emptyFileIsAnError() throws {
        try expectError("# nothing here\n", keyPath: "", reason: "the file is empty")
    }

    @Test func missingFileIsAnError() throws {
        let url = try makeTemporaryFolder().appendingPathComponent("topology/absent.yaml")
        defer { removeFolder(of: url) }
        let error = #expect(throws: TopologyError.self) { try Topology.load(contentsOf: url) }
        #expect(error?.description == "\(url.relativePath): no such file")
    }

    @Test func missingModelKey() throws {
        try expectError(replacing("model: ../models/b-lenet3\n", with: ""), keyPath: "model",
                        reason: "missing required key 'model'")
    }

    @Test func missingNodesKey() throws {
        try expectError("model: m\n", keyPath: "nodes", reason: "missing required key 'nodes'")
    }

    @Test func emptyNodesList() throws {
        try expectError("model: m\nnodes: []\n", keyPath: "nodes", reason: "at least one node is needed")
    }

    @Test(arguments: [
        ("name", "  - name: edge\n    role: edge\n", "  - role: edge\n"),
        ("role", "    role: edge\n", ""),
        ("stages", "    stages: [edge]\n", ""),
    ])
    func missingNodeKey(key: String, target: String, replacement: String) throws {
        try expectError(replacing(target, with: replacement), keyPath: "nodes[1].\(key)",
                        reason: "missing required key '\(key)'")
    }

    @Test func misspeltNodeKeyIsNamed() throws {
        try expectError(replacing("upstream: cloud", with: "upstrem: cloud"), keyPath: "nodes[1].upstrem",
                        reason: "unknown key 'upstrem'", "did you mean 'upstream'?")
    }

    @Test func unknownTopLevelKeyIsNamed() throws {
        try expectError(replacing("certs: ../certs", with: "cert: ../certs"), keyPath: "cert",
                        reason: "unknown key 'cert'", "did you mean 'certs'?")
    }

    @Test func unknownTLSKeyIsNamed() throws {
        let yaml = replacing("    listen: 127.0.0.1:7402", with: "    listen: 127.0.0.1:7402\n    tls: {ca: ca.pem, certificate: c.pem}")
        try expectError(yaml, keyPath: "nodes[2].tls.certificate", reason: "unknown key 'certificate'")
    }

    struct WrongType: Sendable, CustomTestStringConvertible {
        var target: String
        var replacement: String
        var keyPath: String
        var reason: String
        var testDescription: String { keyPath }
    }

    @Test(arguments: [
        WrongType(target: "stages: [edge]", replacement: "stages: edge",
                  keyPath: "nodes[1].stages", reason: "expected a list such as [a, b], got 'edge'"),
        WrongType(target: "stages: [edge]", replacement: "stages: [[edge]]",
                  keyPath: "nodes[1].stages[0]", reason: "expected a string, got a list"),
        WrongType(target: "thresholds: [0.4]", replacement: "thresholds: [high]",
                  keyPath: "nodes[1].thresholds[0]", reason: "expected a number, got 'high'"),
        WrongType(target: "upstream: cloud", replacement: "upstream: cloud\n    deadlineMs: soon",
                  keyPath: "nodes[1].deadlineMs", reason: "expected an integer, got 'soon'"),
        WrongType(target: "upstream: cloud", replacement: "upstream: cloud\n    maxInFlight: 2.5",
                  keyPath: "nodes[1].maxInFlight", reason: "expected an integer, got '2.5'"),
        WrongType(target: "name: edge", replacement: "name: [edge]",
                  keyPath: "nodes[1].name", reason: "expected a string, got a list"),
        WrongType(target: "role: edge", replacement: "role:",
                  keyPath: "nodes[1].role", reason: "missing required key 'role'"),
        WrongType(target: "listen: 127.0.0.1:7402", replacement: "listen: 127.0.0.1:7402\n    tls: cloud.pem",
                  keyPath: "nodes[2].tls", reason: "expected a mapping with keys ca, cert, key, got 'cloud.pem'"),
        WrongType(target: "  - name: cloud\n    role: cloud\n    stages: [cloud]\n    listen: 127.0.0.1:7402",
                  replacement: "  - cloud", keyPath: "nodes[2]", reason: "expected a mapping with keys name, role"),
        WrongType(target: "model: ../models/b-lenet3", replacement: "model: {path: x}",
                  keyPath: "model", reason: "expected a string, got a mapping"),
    ])
    func wrongTypeIsAnError(_ wrong: WrongType) throws {
        try expectError(replacing(wrong.target, with: wrong.replacement), keyPath: wrong.keyPath, reason: wrong.reason)
    }

    @Test func nodesMustBeAList() throws {
        try expectError("model: m\nnodes: {device: {role: device}}\n", keyPath: "nodes",
                        reason: "expected a list such as [a, b], got a mapping")
    }

    @Test func rootMustBeAMapping() throws {
        try expectError("- a\n- b\n", keyPath: "", reason: "expected a mapping with keys model, dataset, certs, nodes, got a list")
    }

    @Test func nodeNameCharactersAreChecked() throws {
        try expectError(replacing("name: cloud", with: "name: 'cloud/1'").replacingOccurrences(of: "upstream: cloud", with: "upstream: cloud/1"),
                        keyPath: "nodes[2].name", reason: "may contain only letters, digits")
    }

    @Test func unknownRole() throws {
        try expectError(replacing("role: edge", with: "role: fog"), keyPath: "nodes[1].role",
                        reason: "unknown role 'fog' (expected device, edge or cloud)")
    }

    @Test func unknownCodec() throws {
        try expectError(replacing("upstream: cloud", with: "upstream: cloud\n    codec: int3"), keyPath: "nodes[1].codec",
                        reason: "unknown codec 'int3' (expected one of float32, float16, int8, uint8, int8-channel, int4, sign, each optionally followed by +lz4 or +zstd)")
    }

    @Test func codecThatNeedsVersion2() throws {
        try expectError(replacing("upstream: cloud", with: "upstream: cloud\n    codec: int4+zstd\n    protocol: 1"), keyPath: "nodes[1].codec",
                        reason: "codec 'int4+zstd' needs protocol version 2, but the node sets 'protocol: 1' (version 1 carries float32, float16, int8 only)")
    }

    @Test func unknownPrecision() throws {
        try expectError(replacing("upstream: cloud", with: "upstream: cloud\n    precision: int4"), keyPath: "nodes[1].precision",
                        reason: "unknown precision 'int4' (expected float32 or int8)")
    }

    @Test func int8NeedsHostedStages() throws {
        try expectError(replacing("role: device", with: "role: device\n    precision: int8").replacingOccurrences(of: "stages: [device]", with: "stages: []"),
                        keyPath: "nodes[0].precision", reason: "'precision: int8' needs stages to run in int8, and this node hosts none")
    }

    @Test func unknownFailurePolicy() throws {
        try expectError(replacing("upstream: cloud", with: "upstream: cloud\n    onUpstreamFailure: retry"),
                        keyPath: "nodes[1].onUpstreamFailure", reason: "unknown policy 'retry' (expected degrade or fail)")
    }

    @Test(arguments: ["deadlineMs: 0", "deadlineMs: -5", "maxInFlight: 0", "maxInFlight: -1",
                      "maxInFlight: 1000000000000", "deadlineMs: 3600001"])
    func linkSettingsMustBeInRange(setting: String) throws {
        let key = String(setting.split(separator: ":")[0])
        let value = setting.split(separator: " ")[1]
        try expectError(replacing("upstream: edge", with: "upstream: edge\n    \(setting)"), keyPath: "nodes[0].\(key)",
                        reason: "must be a positive integer from 1 to", "got \(value)")
    }

    @Test(arguments: ["-0.1", ".nan", ".inf", "-.inf"])
    func thresholdsMustBeFiniteAndNonNegative(value: String) throws {
        try expectError(replacing("thresholds: [0.3]", with: "thresholds: [\(value)]"), keyPath: "nodes[0].thresholds[0]",
                        reason: "threshold must be finite and >= 0")
    }
}
