import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyTraining
import Foundation

/// Options shared by the commands that run a trained model over a data set.
struct ModelOptions: ParsableArguments {
    /// The default model directory of every command that takes `--model`.
    static let defaultModel = "models/b-resnet3"

    /// The default data set.
    static let defaultDataset = "data/fashion-mnist"

    @Option(help: "Model directory (model.json + weights.safetensors; default: the topology's with --topology, else \(Self.defaultModel)).")
    var model: String?

    @Option(help: "Data set: a directory (its test split; IDX or CIFAR-10 binary, told by its file names), an IDX images file or a CIFAR-10 .bin batch (default: the topology's 'dataset:' with --topology, else \(Self.defaultDataset)).")
    var dataset: String?

    @Option(help: "Evaluate only the first N samples.")
    var limit: Int?

    @Option(help: "Feature codec between stages: one for every link (int8) or one per link (sign,int8); default: the model's.")
    var codec: String?

    @Option(help: "Run as this topology's cluster does: its model, data set, thresholds and each link's codec (raw input included).")
    var topology: String?

    @Option(help: "With --topology: the device whose path to the root gives the codecs (default: the first device).")
    var device: String?

    @Option(help: "Worker threads for the kernels.")
    var threads: Int?

    @Option(help: "Arithmetic of the convolutions: float32 or int8 (the model's int8.json, from `branchy quantize`); default: float32, or with --topology each node's `precision:`.")
    var precision: String?

    func validate() throws {
        if codec != nil && topology != nil { throw ValidationError("give --codec or --topology, not both") }
        if device != nil && topology == nil { throw ValidationError("--device needs --topology") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let precision, precision != "float32" && precision != "int8" {
            throw ValidationError("--precision: unknown '\(precision)' (expected float32 or int8)")
        }
        if precision != nil && topology != nil { throw ValidationError("give --precision or --topology (whose nodes set `precision:`), not both") }
    }

    /// The int8 calibration the run uses: every convolution's with `--precision int8`; with
    /// `--topology`, those of the stages that nodes with `precision: int8` host on the device's
    /// path to the root; else none.
    func int8Calibration(model m: Model) throws -> Int8Calibration? {
        try branchy.int8Calibration(model: m, precision: precision, topology: try loadedTopology(), topologyPath: topology, device: device)
    }
}

/// The int8 calibration a run uses: every convolution's with `precision` int8; with a topology, those
/// of the stages that nodes with `precision: int8` host on the device's path to the root; else none.
func int8Calibration(model m: Model, precision: String?, topology t: Topology?, topologyPath path: String?, device: String?) throws -> Int8Calibration? {
    if precision == "int8" { return try Int8Calibration.load(for: m) }
    guard let t, let path else { return nil }
    guard let start = device.map({ t.node(named: $0) }) ?? t.nodes.first(where: { $0.role == .device }) else {
        throw ValidationError("\(path): no device '\(device ?? "")' to follow to the root")
    }
    let stageNames = m.network.stages.map(\.name)
    var stages: Set<Int> = []
    var node: NodeConfig? = start
    var visited: Set<String> = []
    while let n = node, visited.insert(n.name).inserted {
        if n.precision == .int8 { stages.formUnion(n.stages.compactMap { stageNames.firstIndex(of: $0) }) }
        node = n.upstream.flatMap { t.node(named: $0) }
    }
    guard !stages.isEmpty else { return nil }
    return try Int8Calibration.load(for: m, stages: stages).restricted(to: m.network, stages: stages)
}

extension ModelOptions {

    /// The topology given with `--topology`, loaded without its certificates; nil without it.
    func loadedTopology() throws -> Topology? {
        try topology.map { try Topology.load(contentsOf: URL(fileURLWithPath: $0), checkFiles: false) }
    }

    /// The model directory: `--model`, else the topology's, else the default. With both `--model`
    /// and `--topology`, they must name the same directory.
    func modelPath() throws -> String {
        guard let t = try loadedTopology() else { return model ?? Self.defaultModel }
        let fromTopology = t.modelDirectory.standardizedFileURL.resolvingSymlinksInPath().path
        if let model, URL(fileURLWithPath: model).standardizedFileURL.resolvingSymlinksInPath().path != fromTopology {
            throw ValidationError("--model \(model) is not the model of \(topology ?? "") (\(fromTopology)); drop --model to use the topology's")
        }
        return fromTopology
    }

    /// The data set: `--dataset`, else the topology's `dataset:`, else the default.
    func datasetPath() throws -> String {
        if let dataset { return dataset }
        return try loadedTopology()?.dataset?.path ?? Self.defaultDataset
    }

    /// With `--topology`: the threshold of every exit but the last as the device's path to the root
    /// applies them (each node's own `thresholds:` for its stages, the model's defaults elsewhere).
    func topologyThresholds(model m: Model) throws -> [Float]? {
        guard let path = topology, let t = try loadedTopology() else { return nil }
        let stageNames = m.network.stages.map(\.name)
        let exits = stageNames.count
        guard let start = device.map({ t.node(named: $0) }) ?? t.nodes.first(where: { $0.role == .device }) else {
            throw ValidationError("\(path): no device '\(device ?? "")' to follow to the root")
        }
        var thresholds = m.spec.defaults?.thresholds ?? [Float](repeating: 0.5, count: exits - 1)
        var node: NodeConfig? = start
        var visited: Set<String> = []
        while let n = node, visited.insert(n.name).inserted {
            if !n.thresholds.isEmpty {
                let own = n.stages.compactMap { stageNames.firstIndex(of: $0) }.filter { $0 < exits - 1 }
                for (k, i) in own.enumerated() where k < n.thresholds.count { thresholds[i] = n.thresholds[k] }
            }
            node = n.upstream.flatMap { t.node(named: $0) }
        }
        return thresholds
    }

    func load() throws -> (Model, ImageDataset, LinkCodecs) {
        if let threads { Parallel.threads = max(1, threads) }
        let m = try Model.load(directory: URL(fileURLWithPath: try modelPath()))
        let dataset = try datasetPath()
        let d = try ImageDataset.load(path: dataset, for: m.spec.input, preprocessing: m.spec.preprocessing)
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
