import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

/// Options shared by the commands that run a trained model over a data set.
struct ModelOptions: ParsableArguments {
    /// The default model directory of every command that takes `--model`.
    static let defaultModel = "models/b-resnet3"

    @Option(help: "Model directory (model.json + weights.safetensors).")
    var model: String = Self.defaultModel

    @Option(help: "Data set: a directory (its test split; IDX or CIFAR-10 binary, told by its file names), an IDX images file or a CIFAR-10 .bin batch.")
    var dataset: String = "data/fashion-mnist"

    @Option(help: "Evaluate only the first N samples.")
    var limit: Int?

    @Option(help: "Feature codec between stages: one for every link (int8) or one per link (sign,int8); default: the model's.")
    var codec: String?

    @Option(help: "Take each link's codec from this topology file, as its cluster applies them (raw input included).")
    var topology: String?

    @Option(help: "With --topology: the device whose path to the root gives the codecs (default: the first device).")
    var device: String?

    @Option(help: "Worker threads for the kernels.")
    var threads: Int?

    func validate() throws {
        if codec != nil && topology != nil { throw ValidationError("give --codec or --topology, not both") }
        if device != nil && topology == nil { throw ValidationError("--device needs --topology") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func load() throws -> (Model, ImageDataset, LinkCodecs) {
        if let threads { Parallel.threads = max(1, threads) }
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let d = try ImageDataset.load(path: dataset)
        guard d.shape == m.spec.input else {
            throw ValidationError("\(dataset): images are \(d.shapeDescription) but the model expects \(m.spec.input)")
        }
        let stages = m.network.stages.count
        if let topology {
            // Each link's codec as the cluster applies it, raw input included.
            return (m, d, try WireCost.from(topology: topology, device: device, network: m.network).linkCodecs)
        }
        return (m, d, try LinkCodecs.parse(codec ?? m.spec.defaults?.codec ?? "float32", stages: stages))
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
