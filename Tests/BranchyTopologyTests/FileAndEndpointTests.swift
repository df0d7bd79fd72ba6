import Foundation
import Testing
@testable import BranchyTopology

@Suite("TLS files, paths and endpoints")
struct FileAndEndpointTests {
    /// The same cap at start-up and on reload (both read through `Topology.load`).
    @Test func aTopologyFileOverTheSizeLimitIsRefusedBeforeItIsRead() throws {
        let padded = validThreeTier + "\n# " + String(repeating: "x", count: Topology.maxFileBytes) + "\n"
        let url = try writeTopology(padded)
        defer { removeFolder(of: url) }
        let error = #expect(throws: TopologyError.self) { try Topology.load(contentsOf: url, checkFiles: false) }
        #expect(error?.reason.contains("at most \(Topology.maxFileBytes) bytes") == true, "\(String(describing: error))")
        // Just under the cap still loads.
        let fits = try writeTopology(validThreeTier + "\n# " + String(repeating: "x", count: Topology.maxFileBytes - validThreeTier.utf8.count - 8) + "\n")
        defer { removeFolder(of: fits) }
        #expect(throws: Never.self) { try Topology.load(contentsOf: fits, checkFiles: false) }
    }

    @Test func missingTLSFileNamesNodeKeyAndPath() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let certs = folder.appendingPathComponent("certs")
        try FileManager.default.createDirectory(at: certs, withIntermediateDirectories: true)
        for file in ["ca.pem", "device.pem", "device-key.pem", "edge-key.pem"] {
            try "x".write(to: certs.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let url = try writeTopology(validThreeTier, in: folder)
        let error = #expect(throws: TopologyError.self) {
            try Topology.load(contentsOf: url, stageOrder: lenetStages, checkFiles: true)
        }
        let expectedPath = certs.appendingPathComponent("edge.pem").standardizedFileURL.path
        #expect(error?.keyPath == "nodes[1].tls.cert")
        #expect(error?.description.contains("nodes[1].tls.cert: node 'edge': TLS certificate file '\(expectedPath)' does not exist") == true,
                "\(String(describing: error))")
    }

    @Test func tlsFileThatIsAFolderIsAnError() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("certs/ca.pem"), withIntermediateDirectories: true)
        let url = try writeTopology(validThreeTier, in: folder)
        let error = #expect(throws: TopologyError.self) { try Topology.load(contentsOf: url, checkFiles: true) }
        #expect(error?.keyPath == "nodes[0].tls.ca")
        #expect(error?.reason.contains("is a directory") == true)
    }

    @Test func explicitTLSPathsResolveAgainstTheCertsFolder() throws {
        let yaml = replacing("listen: 127.0.0.1:7402", with: "listen: 127.0.0.1:7402\n    tls: {ca: root/ca.pem, cert: /etc/c.pem}")
        let topology = try loadValid(yaml)
        let tls = try #require(topology.node(named: "cloud")?.tls)
        let certs = try #require(topology.certsDirectory)
        #expect(tls.ca.path == certs.appendingPathComponent("root/ca.pem").path)
        #expect(tls.cert.path == "/etc/c.pem")
        #expect(tls.key.path == certs.appendingPathComponent("cloud-key.pem").path)
    }

    @Test func withoutCertsTLSPathsResolveAgainstTheTopologyFolder() throws {
        let url = try writeTopology(replacing("certs: ../certs\n", with: ""))
        defer { removeFolder(of: url) }
        let topology = try Topology.load(contentsOf: url, checkFiles: false)
        #expect(topology.certsDirectory == nil)
        let folder = url.deletingLastPathComponent().standardizedFileURL.path
        #expect(topology.node(named: "edge")?.tls.cert.path == folder + "/edge.pem")
        #expect(topology.modelDirectory.path == url.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("models/b-lenet3").standardizedFileURL.path)
    }

    @Test func defaultsApplyWhenKeysAreAbsent() throws {
        let edge = try #require(try loadValid(validThreeTier).node(named: "edge"))
        #expect(edge.codec == "float32")
        #expect(edge.onUpstreamFailure == .degrade)
        #expect(edge.deadlineMillis == 10_000)
        #expect(edge.maxInFlight == 256)
    }

    @Test func linkSettingsAreRead() throws {
        let yaml = replacing("upstream: cloud", with: """
            upstream: cloud
                codec: float16
                onUpstreamFailure: fail
                deadlineMs: 5000
                maxInFlight: 64
            """)
        let edge = try #require(try loadValid(yaml).node(named: "edge"))
        #expect(edge.codec == "float16" && edge.onUpstreamFailure == .fail)
        #expect(edge.deadlineMillis == 5000 && edge.maxInFlight == 64)
    }

    @Test func errorDescriptionFormat() {
        let error = TopologyError(filePath: "topology/local.yaml", keyPath: "nodes[2].upstream", reason: "unknown node 'edge9'")
        #expect(error.description == "topology/local.yaml: nodes[2].upstream: unknown node 'edge9'")
        let whole = TopologyError(filePath: "t.yaml", keyPath: "", reason: "no such file", line: 3)
        #expect(whole.description == "t.yaml: no such file (line 3)")
    }

    @Test(arguments: [
        ("127.0.0.1:7401", "127.0.0.1", 7401),
        ("[::1]:7402", "::1", 7402),
        ("[fe80::1:2]:1", "fe80::1:2", 1),
        ("edge-a.local:65535", "edge-a.local", 65535),
        ("localhost:80", "localhost", 80),
    ])
    func endpointParses(text: String, host: String, port: Int) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint == Endpoint(host: host, port: port))
        #expect(endpoint.description == text)
    }

    @Test(arguments: ["", ":80", "host", "[::1]:x", "[zz::1]:80", "1.2.3:80", "-bad:80", "a..b:80", "[::1:80"])
    func endpointRejects(text: String) {
        #expect(throws: EndpointError.self) { try Endpoint(parsing: text) }
    }
}
