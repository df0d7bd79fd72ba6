import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import Foundation

/// Options shared by the commands that run a trained model over a data set.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model directory (model.json + weights.safetensors).")
    var model: String = "models/b-lenet3"

    @Option(help: "IDX data set: a directory (test split) or an images file.")
    var dataset: String = "data/fashion-mnist"

    @Option(help: "Evaluate only the first N samples.")
    var limit: Int?

    @Option(help: "Feature codec between stages: float32, float16 or int8 (default: the model's).")
    var codec: String?

    @Option(help: "Worker threads for the kernels.")
    var threads: Int?

    func validate() throws {
        if let codec, FeatureCodecKind(codec) == nil {
            throw ValidationError("--codec: unknown codec '\(codec)' (expected float32, float16 or int8)")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func load() throws -> (Model, IDXDataset, FeatureCodecKind) {
        if let threads { Parallel.threads = max(1, threads) }
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let d = try IDXDataset.load(path: dataset)
        guard [1, d.rows, d.cols] == m.spec.input else {
            throw ValidationError("\(dataset): images are 1×\(d.rows)×\(d.cols) but the model expects \(m.spec.input)")
        }
        let name = codec ?? m.spec.defaults?.codec ?? "float32"
        return (m, d, FeatureCodecKind(name) ?? .float32)
    }
}

/// Parses a comma-separated list of floats.
func parseFloats(_ s: String, _ option: String) throws -> [Float] {
    try s.split(separator: ",").map {
        guard let v = Float($0.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw ValidationError("\(option): '\($0)' is not a number")
        }
        return v
    }
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Parses a comma-separated list of positive integers.
func parseInts(_ s: String, _ option: String) throws -> [Int] {
    let values = try s.split(separator: ",").map {
        guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v > 0 else {
            throw ValidationError("\(option): '\($0)' is not a positive whole number")
        }
        return v
    }
    guard !values.isEmpty else { throw ValidationError("\(option): give at least one value") }
    return values
}
