import BranchyTensor
import Foundation

/// What `branchy quantize` measured: the range of every convolution's input over held-out
/// samples, from which each convolution's input quantization follows. Saved as `int8.json`
/// beside a model; a node whose topology entry says `precision: int8` runs its convolutions in
/// int8 with it.
public struct Int8Calibration: Codable, Sendable, Equatable {
    /// The range seen at one convolution's input.
    public struct Range: Codable, Sendable, Equatable {
        public var min: Float
        public var max: Float
        public init(min: Float, max: Float) { self.min = min; self.max = max }
        /// The byte mapping that covers the range.
        public var quantization: ActivationQuantization { ActivationQuantization(min: min, max: max) }
    }

    /// `branchy-int8`.
    public var format: String
    /// 1.
    public var version: Int
    /// The model's name.
    public var model: String
    /// The model's fingerprint (hex SHA-256 of its description and weights): ranges measured on
    /// other weights do not apply.
    public var fingerprint: String
    /// Held-out samples the ranges were taken over.
    public var samples: Int
    /// The range per convolution, keyed by its weights' name without `.weight` (for example `edge.trunk.b1.conv1`).
    public var activations: [String: Range]

    public static let fileName = "int8.json"

    public init(model: String, fingerprint: String, samples: Int, activations: [String: Range]) {
        format = "branchy-int8"
        version = 1
        self.model = model
        self.fingerprint = fingerprint
        self.samples = samples
        self.activations = activations
    }

    /// The input quantization per convolution key.
    public var quantizations: [String: ActivationQuantization] { activations.mapValues(\.quantization) }

    /// Loads `int8.json` from a model's directory and checks it against the model.
    public static func load(for m: Model, stages: Set<Int>? = nil) throws -> Int8Calibration {
        let url = m.directory.appendingPathComponent(fileName)
        let c = try load(url)
        try c.check(covers: m, stages: stages, file: url.path)
        return c
    }

    /// The calibration of the convolutions of `network`'s stages `stages` only: the others run in float32.
    public func restricted(to network: Network, stages: Set<Int>) -> Int8Calibration {
        var c = self
        let keep = Set(network.convolutionKeys(stages: stages))
        c.activations = activations.filter { keep.contains($0.key) }
        return c
    }

    /// Reads a calibration file, checking its format, its version and every range.
    public static func load(_ url: URL) throws -> Int8Calibration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw Int8CalibrationError(file: url.path, reason: "cannot be read (\(error.localizedDescription)); run `branchy quantize` to make it")
        }
        let c: Int8Calibration
        do { c = try JSONDecoder().decode(Int8Calibration.self, from: data) } catch {
            throw Int8CalibrationError(file: url.path, reason: "is not an int8 calibration: \(error)")
        }
        guard c.format == "branchy-int8" else { throw Int8CalibrationError(file: url.path, reason: "format is '\(c.format)', expected 'branchy-int8'") }
        guard c.version == 1 else { throw Int8CalibrationError(file: url.path, reason: "version \(c.version) is not supported (1 is)") }
        for (key, r) in c.activations.sorted(by: { $0.key < $1.key }) where !(r.min.isFinite && r.max.isFinite && r.min <= r.max && (r.max - r.min).isFinite) {
            throw Int8CalibrationError(file: url.path, reason: "activations.\(key): range [\(r.min), \(r.max)] is not a finite, ordered range of finite width")
        }
        return c
    }

    /// Writes the file (sorted keys, so that the same calibration gives the same bytes).
    public func write(to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try (e.encode(self) + Data("\n".utf8)).write(to: url)
    }

    /// Checks that the calibration was made for `m`'s weights and covers every convolution of
    /// its stages `stages` (all when nil).
    public func check(covers m: Model, stages: Set<Int>? = nil, file: String) throws {
        guard fingerprint == m.fingerprintHex else {
            throw Int8CalibrationError(file: file, reason: "was made for model '\(model)' (\(fingerprint.prefix(16))), not these weights of '\(m.spec.name)' (\(m.fingerprintHex.prefix(16))); run `branchy quantize` again")
        }
        let network = m.network
        let missing = network.convolutionKeys(stages: stages).filter { activations[$0] == nil }
        if !missing.isEmpty {
            throw Int8CalibrationError(file: file, reason: "has no range for \(missing.joined(separator: ", ")); run `branchy quantize` again")
        }
    }
}

/// A calibration file that cannot be used, and why.
public struct Int8CalibrationError: Error, CustomStringConvertible {
    public let file: String
    public let reason: String
    public var description: String { "int8 calibration \(file) \(reason)" }
}
