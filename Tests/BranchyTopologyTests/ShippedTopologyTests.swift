import Foundation
import Testing
@testable import BranchyTopology

@Suite("Shipped topologies")
struct ShippedTopologyTests {
    let local = repositoryRoot.appendingPathComponent("topology/local.yaml")
    let fanin = repositoryRoot.appendingPathComponent("topology/fanin.yaml")

    @Test func localLoadsAsThreeTiers() throws {
        let topology = try Topology.load(contentsOf: local, stageOrder: lenetStages, checkFiles: false)
        #expect(topology.nodes.map(\.name) == ["device", "edge", "cloud"])
        #expect(topology.modelDirectory.path == repositoryRoot.appendingPathComponent("models/b-resnet3").standardizedFileURL.path)
        #expect(topology.certsDirectory?.path == repositoryRoot.appendingPathComponent("certs/local").standardizedFileURL.path)

        let device = try #require(topology.node(named: "device"))
        #expect(device.role == .device && device.listen == nil && device.upstream == "edge")
        #expect(device.stages == ["device"] && device.thresholds == [0.6] && device.codec == "int8")
        #expect(device.onUpstreamFailure == .degrade)
        #expect(device.deadlineMillis == 10_000 && device.maxInFlight == 256)

        let edge = try #require(topology.node(named: "edge"))
        #expect(edge.listen == Endpoint(host: "127.0.0.1", port: 7401))
        #expect(edge.upstream == "cloud" && edge.codec == "int8" && edge.thresholds == [0.7])

        let cloud = try #require(topology.node(named: "cloud"))
        #expect(cloud.listen == Endpoint(host: "127.0.0.1", port: 7402))
        #expect(cloud.isRoot && cloud.thresholds.isEmpty)
        #expect(cloud.tls.ca.lastPathComponent == "ca.pem")
        #expect(cloud.tls.cert.path.hasSuffix("certs/local/cloud.pem"))
        #expect(cloud.tls.key.path.hasSuffix("certs/local/cloud-key.pem"))

        #expect(topology.pathToRoot(from: "device").map(\.name) == ["device", "edge", "cloud"])
        #expect(topology.children(of: "cloud").map(\.name) == ["edge"])
        #expect(topology.roots.map(\.name) == ["cloud"])
    }

    @Test func binarisedModelTopologyLoadsAsThreeTiers() throws {
        let url = repositoryRoot.appendingPathComponent("topology/b-lenet3-bin.yaml")
        let topology = try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: false)
        #expect(topology.nodes.map(\.name) == ["device", "edge", "cloud"])
        #expect(topology.modelDirectory.path == repositoryRoot.appendingPathComponent("models/b-lenet3-bin").standardizedFileURL.path)
        #expect(topology.pathToRoot(from: "device").map(\.name) == ["device", "edge", "cloud"])
        // One bit per forwarded value from the device; 4-bit values, compressed where that helps, from the edge.
        #expect(topology.node(named: "device")?.codec == "sign" && topology.node(named: "edge")?.codec == "int4+zstd")
        #expect(topology.node(named: "device")?.protocolVersion == 2)
    }

    @Test func faninLoadsAsATree() throws {
        let topology = try Topology.load(contentsOf: fanin, stageOrder: lenetStages, checkFiles: false)
        #expect(topology.nodes.count == 7)
        #expect(topology.children(of: "edge-a").map(\.name) == ["device-1", "device-2"])
        #expect(topology.children(of: "edge-b").map(\.name) == ["device-3", "device-4"])
        #expect(topology.children(of: "cloud").map(\.name) == ["edge-a", "edge-b"])
        #expect(topology.children(of: "device-1").isEmpty)
        #expect(topology.pathToRoot(from: "device-3").map(\.name) == ["device-3", "edge-b", "cloud"])
        #expect(topology.pathToRoot(from: "nobody").isEmpty)
        #expect(topology.node(named: "edge-b")?.listen?.description == "127.0.0.1:7412")
        #expect(topology.node(named: "cloud")?.listen?.port == 7413)
        #expect(topology.node(named: "device-4")?.tls.cert.path.hasSuffix("certs/fanin/device-4.pem") == true)
    }

    static let hasOpenSSL = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
        .contains { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs a command, returning its exit status and combined output.
    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: hasOpenSSL), arguments: ["local", "fanin"])
    func generatedCertificatesSatisfyTheFileCheck(name: String) throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("topology/\(name).yaml")
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("topology/\(name).yaml"), to: copy)

        // Before the certificates exist the file check names the first missing file.
        let missing = #expect(throws: TopologyError.self) {
            try Topology.load(contentsOf: copy, stageOrder: lenetStages, checkFiles: true)
        }
        #expect(missing?.keyPath == "nodes[0].tls.ca")

        // The nodes and certificate folder as the loader reads them, as scripts get them from `branchy topology show`.
        let unchecked = try Topology.load(contentsOf: copy, checkFiles: false)
        let folderOfCerts = try #require(unchecked.certsDirectory)
        let script = repositoryRoot.appendingPathComponent("scripts/gen-certs.sh").path
        let made = try run(["bash", script, "--nodes", unchecked.nodes.map(\.name).joined(separator: ","), folderOfCerts.path])
        #expect(made.status == 0, "\(made.output)")
        #expect(made.output.contains("made"))

        let topology = try Topology.load(contentsOf: copy, stageOrder: lenetStages, checkFiles: true)
        for node in topology.nodes {
            let verified = try run(["openssl", "verify", "-CAfile", node.tls.ca.path, node.tls.cert.path])
            #expect(verified.status == 0, "\(verified.output)")
            let key = try String(contentsOf: node.tls.key, encoding: .utf8)
            #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----"), "key of \(node.name) is not PKCS#8")
        }

        let again = try run(["bash", script, copy.path])
        #expect(again.status == 0)
        #expect(!again.output.contains("made"), "second run must keep existing files: \(again.output)")
    }
}
