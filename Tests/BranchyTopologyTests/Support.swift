import Foundation
import Testing
@testable import BranchyTopology

/// The stage names of model b-lenet3, in order.
let lenetStages = ["device", "edge", "cloud"]

/// The repository root, found from this file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A valid three-tier topology that the error tests change one piece at a time.
let validThreeTier = """
    model: ../models/b-lenet3
    certs: ../certs
    nodes:
      - name: device
        role: device
        stages: [device]
        thresholds: [0.3]
        upstream: edge
      - name: edge
        role: edge
        stages: [edge]
        thresholds: [0.4]
        listen: 127.0.0.1:7401
        upstream: cloud
      - name: cloud
        role: cloud
        stages: [cloud]
        listen: 127.0.0.1:7402
    """

/// A fresh folder `<tmp>/branchy-topology-<uuid>` with a `topology` subfolder.
func makeTemporaryFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("branchy-topology-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("topology"),
                                            withIntermediateDirectories: true)
    return folder
}

/// Writes `yaml` to `<fresh tmp>/topology/test.yaml` and returns its URL.
func writeTopology(_ yaml: String, in folder: URL? = nil) throws -> URL {
    let url = try (folder ?? makeTemporaryFolder()).appendingPathComponent("topology/test.yaml")
    try yaml.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// `text` with `target` replaced; records an issue if `target` is absent, so a
/// fixture never silently stays valid.
func replacing(_ target: String, with replacement: String, in text: String = validThreeTier,
               sourceLocation: SourceLocation = #_sourceLocation) -> String {
    #expect(text.contains(target), "fixture does not contain '\(target)'", sourceLocation: sourceLocation)
    return text.replacingOccurrences(of: target, with: replacement)
}

/// Loads `yaml` from a temporary file, expects a `TopologyError`, and checks that its
/// key path is `keyPath` and that the description contains `keyPath: ` and every part of `reason`.
@discardableResult
func expectError(
    _ yaml: String, keyPath: String, reason: String..., stageOrder: [String]? = lenetStages, checkFiles: Bool = false,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> TopologyError? {
    let url = try writeTopology(yaml)
    defer { removeFolder(of: url) }
    let error = #expect(throws: TopologyError.self, sourceLocation: sourceLocation) {
        try Topology.load(contentsOf: url, stageOrder: stageOrder, checkFiles: checkFiles)
    }
    guard let error else { return nil }
    #expect(error.keyPath == keyPath, "\(error)", sourceLocation: sourceLocation)
    #expect(error.filePath == url.relativePath, sourceLocation: sourceLocation)
    if !keyPath.isEmpty {
        #expect(error.description.contains(": \(keyPath): "), "\(error)", sourceLocation: sourceLocation)
    }
    for part in reason {
        #expect(error.description.contains(part), "\(error)", sourceLocation: sourceLocation)
    }
    return error
}

/// Loads valid `yaml` from a temporary file, recording any error.
func loadValid(_ yaml: String, stageOrder: [String]? = lenetStages) throws -> Topology {
    let url = try writeTopology(yaml)
    defer { removeFolder(of: url) }
    return try Topology.load(contentsOf: url, stageOrder: stageOrder, checkFiles: false)
}

/// Removes the temporary folder that `writeTopology` made for `url`.
func removeFolder(of url: URL) {
    try? FileManager.default.removeItem(at: url.deletingLastPathComponent().deletingLastPathComponent())
}
