import BranchyTensor
import Foundation

/// A model directory: `model.json` (the description) and `weights.safetensors` (the tensors).
///
/// The fingerprint, a SHA-256 over the bytes of both files, identifies the exact model;
/// the tiers of a cluster compare fingerprints before exchanging features.
public final class Model: Sendable {
    public static let specFileName = "model.json"
    public static let weightsFileName = "weights.safetensors"

    public let directory: URL
    public let network: Network
    /// SHA-256 over model.json then weights.safetensors (32 bytes).
    public let fingerprint: [UInt8]

    public var spec: ModelSpec { network.spec }

    /// Fingerprint as lowercase hex.
    public var fingerprintHex: String { fingerprint.map { String(format: "%02x", $0) }.joined() }

    init(directory: URL, network: Network, fingerprint: [UInt8]) {
        self.directory = directory; self.network = network; self.fingerprint = fingerprint
    }

    /// Reads and checks a model description file.
    public static func readSpec(_ url: URL) throws -> ModelSpec {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError(file: url.path, reason: "cannot read model file (\(error.localizedDescription))")
        }
        do { return try StrictJSONDecoder.decode(ModelSpec.self, from: data) } catch let e as DecodingError {
            throw ModelError(file: url.path, decoding: e)
        }
    }

    /// Loads `model.json` and `weights.safetensors` from `directory`, checking that every tensor the
    /// description needs is present with the right shape and that the file holds no others.
    public static func load(directory: URL) throws -> Model {
        let specURL = directory.appendingPathComponent(specFileName)
        let weightsURL = directory.appendingPathComponent(weightsFileName)
        let spec = try readSpec(specURL)
        if let p = spec.preprocessing, let problem = p.problem(channels: spec.input.first ?? 0) {
            throw ModelError(file: specURL.path, reason: "preprocessing: \(problem)")
        }
        let network = try Network(spec: spec, file: specURL.path)
        let (tensors, _) = try SafeTensors.read(contentsOf: weightsURL)
        for (name, shape) in network.expectedTensors {
            guard let t = tensors[name] else {
                throw ModelError(file: weightsURL.path, location: name, reason: "tensor missing (the model file needs it with shape \(shape))")
            }
            guard t.shape == shape else {
                throw ModelError(file: weightsURL.path, location: name, reason: "shape \(t.shape) does not match the model file's \(shape)")
            }
            if let bad = t.data.firstIndex(where: { !$0.isFinite }) {
                throw ModelError(file: weightsURL.path, location: name, reason: "element \(bad) is not finite (\(t.data[bad]))")
            }
            network.assign(name, t)
        }
        let expected = Set(network.expectedTensors.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw ModelError(file: weightsURL.path, location: extra, reason: "tensor not described by \(specURL.lastPathComponent) (wrong model file?)")
        }
        return Model(directory: directory, network: network, fingerprint: try fingerprint(specURL: specURL, weightsURL: weightsURL))
    }

    /// SHA-256 over the model file's bytes followed by the weights file's bytes.
    public static func fingerprint(specURL: URL, weightsURL: URL) throws -> [UInt8] {
        var hasher = SHA256()
        for url in [specURL, weightsURL] {
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw ModelError(file: url.path, reason: "cannot read file for the fingerprint")
            }
            hasher.update(data)
        }
        return hasher.finalize()
    }

    /// Writes `network` as a model directory (creating it) and returns the loaded model.
    @discardableResult
    public static func save(_ network: Network, to directory: URL, metadata: [String: String] = [:]) throws -> Model {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(network.spec).write(to: directory.appendingPathComponent(specFileName))
        try SafeTensors.write(network.namedTensors, metadata: metadata, to: directory.appendingPathComponent(weightsFileName))
        return try load(directory: directory)
    }
}
