import BranchyModel
import Foundation

/// Exports a Branchy network to ONNX, as scripts/export-onnx.py does: the whole network as one
/// graph (input `image`: (N, the model's input shape); every stage's trunk chained; one output
/// per exit, `logits_<exit name>`), or one graph per stage (input `input`: (N, the stage's
/// input shape); outputs `features`, the trunk's output, and `logits`, the exit's). N is a
/// dynamic batch dimension; opset 17.
///
/// Each layer becomes the ONNX nodes `OPERATORS` in scripts/lib/onnx_operators.py gives it
/// (docs/operators.md lists them): a residual block an Add of its body and shortcut, a branches
/// block an Add, Mul (left to right) or Concat (channels) of its branches, a `sign` layer
/// Where(x >= 0, 1, −1), a `binlinear` layer a Gemm of signs, a Mul by α and an Add of the bias.
/// A batch norm directly after a plain convolution is folded into it, as compiled inference does
/// (optional). The graphs read back with ``ONNXImporter`` unless they hold `sign`, `binlinear`,
/// `lrn` or `padchannels` layers, which the importer does not map.
public enum ONNXExporter {
    /// The opset of the default domain the graphs import.
    public static let opset = 17
    /// The IR version written (that of opset 17, so that older runtimes load the graphs too).
    public static let irVersion = 8
    /// The model's `producer_name`.
    public static let producer = "branchy export-onnx"
    /// The input of the whole-network graph.
    public static let imageInput = "image"
    /// The input of a stage's graph (an ONNX value has one name, so it cannot be `features`
    /// like the trunk's output).
    public static let stageInput = "input"

    /// The whole-network graph's output for the exit called `exit`: `logits_<exit>`.
    public static func logitsName(exit: String) -> String { "logits_\(exit)" }

    /// The whole network as one ONNX model (serialized): every trunk chained, every exit's logits
    /// an output, in stage order. Throws an ``ExportError`` for a layer with no ONNX form.
    public static func fullModel(_ network: Network, foldBatchNorm: Bool = true) throws -> Data {
        let spec = network.spec
        var g = ExportGraph(weights: network.namedTensors, foldBatchNorm: foldBatchNorm)
        var x = imageInput
        var outputs: [(name: String, shape: [Int])] = []
        for (stage, described) in zip(network.stages, spec.stages) {
            g.stage = stage.name
            x = try g.layers(ExportLayer.list(described.trunk, stage.trunk, at: "trunk"), x,
                             prefix: "\(stage.name).trunk", scope: "\(stage.name).trunk")
            let logits = logitsName(exit: stage.exitName)
            try g.layers(ExportLayer.list(described.exit.layers, stage.exit, at: "exit.layers"), x,
                         prefix: "\(stage.name).exit", scope: "\(stage.name).exit", lastOutput: logits)
            outputs.append((logits, [spec.classes]))
        }
        let model = g.model(name: "\(spec.name).full", inputs: [(imageInput, spec.input)], outputs: outputs,
                            doc: "Branchy model \(spec.name): all stages, all exits")
        return try model.serializedBytes()
    }

    /// Stage `index` as one ONNX model (serialized): its trunk (output `features`) and its exit
    /// (output `logits`). Throws an ``ExportError`` for a layer with no ONNX form.
    public static func stageModel(_ network: Network, stage index: Int, foldBatchNorm: Bool = true) throws -> Data {
        let spec = network.spec, stage = network.stages[index], described = spec.stages[index]
        var g = ExportGraph(weights: network.namedTensors, foldBatchNorm: foldBatchNorm)
        g.stage = stage.name
        let features = try g.layers(ExportLayer.list(described.trunk, stage.trunk, at: "trunk"), stageInput,
                                    prefix: "\(stage.name).trunk", scope: "\(stage.name).trunk", lastOutput: "features")
        try g.layers(ExportLayer.list(described.exit.layers, stage.exit, at: "exit.layers"), features,
                     prefix: "\(stage.name).exit", scope: "\(stage.name).exit", lastOutput: "logits")
        let model = g.model(name: "\(spec.name).\(stage.name)", inputs: [(stageInput, stage.inputShape)],
                            outputs: [("features", stage.outputShape), ("logits", [spec.classes])],
                            doc: "Branchy model \(spec.name), stage \(stage.name) (trunk + exit \(stage.exitName))")
        return try model.serializedBytes()
    }

    /// Writes the whole network to `file` and, with `stages`, each stage to `stages/<stage>.onnx`
    /// (the folder created if missing). Every graph is built before anything is written, so an
    /// ``ExportError`` leaves no file; each file is written to a temporary file beside it, then
    /// renamed into place, and a failed write (an ``ExportFileError``) removes the files this
    /// call wrote. Returns the files written, stages first.
    @discardableResult
    public static func write(_ network: Network, to file: URL, stages: URL? = nil, foldBatchNorm: Bool = true) throws -> [URL] {
        var files: [(url: URL, data: Data)] = []
        if let stages {
            for (i, s) in network.stages.enumerated() {
                files.append((stages.appendingPathComponent("\(s.name).onnx"), try stageModel(network, stage: i, foldBatchNorm: foldBatchNorm)))
            }
        }
        files.append((file, try fullModel(network, foldBatchNorm: foldBatchNorm)))
        if let stages {
            do { try FileManager.default.createDirectory(at: stages, withIntermediateDirectories: true) } catch {
                throw ExportFileError(file: stages.path, reason: "cannot create the folder (\(error.localizedDescription))")
            }
        }
        return try ExportFiles.write(files)
    }
}
