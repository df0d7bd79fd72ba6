import ArgumentParser
import BranchyTopology
import Foundation
import Testing
@testable import branchy

/// `branchy topology show`: the topology as the loader reads it, for the scripts.
@Suite struct TopologyCommandTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let local = root.appendingPathComponent("topology/local.yaml").path

    func repo(_ path: String) -> String { Self.root.appendingPathComponent(path).standardizedFileURL.path }

    /// The JSON output of `show` for the file at `path`, parsed.
    func json(_ path: String) throws -> [String: Any] {
        let text = try TopologyShow.show(path: path, format: .json)
        #expect(text.hasSuffix("}\n"))
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func nodes(_ object: [String: Any]) throws -> [[String: Any]] {
        try #require(object["nodes"] as? [[String: Any]])
    }

    /// Writes `yaml` to a file `name` in a fresh temporary folder; returns the folder and the file.
    func write(_ yaml: String, name: String = "test.yaml") throws -> (URL, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-topology-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (folder, url.path)
    }

    @Test func theLocalTopologyAsJSONHasAbsolutePathsAndEveryNode() throws {
        let object = try json(Self.local)
        #expect(object["file"] as? String == repo("topology/local.yaml"))
        #expect(object["model"] as? String == repo("models/b-resnet3"))
        #expect(object["dataset"] as? String == repo("data/fashion-mnist"))
        #expect(object["certs"] as? String == repo("certs/local"))
        let nodes = try nodes(object)
        #expect(nodes.map { $0["name"] as? String } == ["device", "edge", "cloud"])
        #expect(nodes.map { $0["role"] as? String } == ["device", "edge", "cloud"])
        #expect(nodes.map { $0["stages"] as? [String] } == [["device"], ["edge"], ["cloud"]])
        #expect(nodes.map { $0["thresholds"] as? [Double] } == [[0.6], [0.7], []])
        #expect(nodes.map { $0["dial"] as? String } == [nil, "127.0.0.1:7401", "127.0.0.1:7402"])
        #expect(nodes[0]["dial"] is NSNull)
        #expect(nodes[0]["listen"] is NSNull)
        #expect(nodes[2]["upstream"] is NSNull)
        #expect(nodes[2]["replicas"] is NSNull)
        #expect(nodes[1]["metrics"] as? String == "127.0.0.1:8401")
        #expect(nodes[1]["upstream"] as? String == "cloud")
        #expect(nodes[1]["codec"] as? String == "int8")
        #expect(nodes[1]["protocolVersion"] as? Int == 2)
        #expect(nodes[1]["deadlineMillis"] as? Int == NodeConfig.defaultDeadlineMillis)
        let tls = try #require(nodes[1]["tls"] as? [String: String])
        #expect(tls == ["ca": repo("certs/local/ca.pem"), "cert": repo("certs/local/edge.pem"), "key": repo("certs/local/edge-key.pem")])
    }

    @Test func theLocalTopologyAsTSVHasTheScriptsColumns() throws {
        let text = try TopologyShow.show(path: Self.local, format: .tsv)
        #expect(text == """
            device\tdevice\t-\tedge\tdevice\t0.6\tint8\t-
            edge\tedge\t127.0.0.1:7401\tcloud\tedge\t0.7\tint8\t-
            cloud\tcloud\t127.0.0.1:7402\t-\tcloud\t-\t-\t-

            """)
    }

    @Test func theFormatIsAnOption() throws {
        let command = try TopologyShow.parse([Self.local, "--format", "tsv"])
        #expect(command.format == .tsv)
        #expect(try TopologyShow.parse([Self.local]).format == .json)
        #expect(throws: (any Error).self) { try TopologyShow.parse([Self.local, "--format", "xml"]) }
    }

    /// Flow-style entries with `name` not first, IPv6 addresses, replicas, a device with no
    /// stage and no codec, and no `certs:` (the file's own folder).
    @Test func anyYAMLTheLoaderTakesIsRead() throws {
        let (folder, path) = try write("""
            model: m
            nodes:
              - {role: device, stages: [], name: dev, upstream: edge}
              - role: edge
                name: edge
                stages: [device, edge]
                thresholds: [0.25, 1]
                listen: '[::]:7401'
                address: 'edge.example:7401'
                upstream: cloud
                codec: int4+zstd
              - {stages: [cloud], role: cloud, name: cloud, metrics: '0.0.0.0:9100',
                 replicas: ['[::1]:7402', {address: 'cloud-b.example:7402', metrics: '10.0.0.7:9200'}]}
            """)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(try TopologyShow.show(path: path, format: .tsv) == """
            dev\tdevice\t-\tedge\t-\t-\tfloat32\t-
            edge\tedge\t[::]:7401\tcloud\tdevice,edge\t0.25,1\tint4+zstd\tedge.example:7401
            cloud\tcloud\t-\t-\tcloud\t-\t-\t-

            """)
        let object = try json(path)
        #expect(object["certs"] as? String == folder.standardizedFileURL.path)
        #expect(object["dataset"] is NSNull)
        #expect(object["model"] as? String == folder.appendingPathComponent("m").standardizedFileURL.path)
        let nodes = try nodes(object)
        #expect(nodes[1]["dial"] as? String == "edge.example:7401")
        #expect(nodes[1]["listen"] as? String == "[::]:7401")
        let replicas = try #require(nodes[2]["replicas"] as? [[String: Any]])
        #expect(replicas.map { $0["address"] as? String } == ["[::1]:7402", "cloud-b.example:7402"])
        #expect(replicas[0]["metrics"] is NSNull)
        #expect(replicas[1]["metrics"] as? String == "10.0.0.7:9200")
        #expect(nodes[2]["dialAddresses"] as? [String] == ["[::1]:7402", "cloud-b.example:7402"])
    }

    @Test func aResolvedReplicaSetIsItsName() throws {
        let (folder, path) = try write("""
            model: m
            nodes:
              - {name: device, role: device, stages: [device], upstream: cloud}
              - {name: cloud, role: cloud, stages: [cloud], listen: '0.0.0.0:7402', replicas: 'cloud.example:7402'}
            """)
        defer { try? FileManager.default.removeItem(at: folder) }
        let nodes = try nodes(try json(path))
        #expect(nodes[1]["replicas"] as? String == "cloud.example:7402")
        #expect(nodes[1]["dial"] as? String == "0.0.0.0:7402")
    }

    @Test func aBrokenTopologyGivesTheLoadersError() throws {
        let (folder, path) = try write("""
            model: m
            nodes:
              - {name: device, role: device, stages: [device], upstream: edge9}
              - {name: cloud, role: cloud, stages: [cloud], listen: '127.0.0.1:7402'}
            """, name: "broken.yaml")
        defer { try? FileManager.default.removeItem(at: folder) }
        for format in TopologyShow.Format.allCases {
            let error = #expect(throws: TopologyError.self) { try TopologyShow.show(path: path, format: format) }
            #expect(error?.keyPath == "nodes[0].upstream")
            #expect(error.map { "\($0)" }?.contains("unknown node 'edge9'") == true, "\(String(describing: error))")
        }
        let missing = #expect(throws: TopologyError.self) {
            try TopologyShow.show(path: folder.appendingPathComponent("none.yaml").path, format: .json)
        }
        #expect(missing?.reason == "no such file")
    }
}
