import ArgumentParser
import BranchyImport
import BranchyModel
import Foundation

struct ExportONNX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-onnx",
        abstract: "Write a model as one ONNX file: every stage, every exit's logits.",
        discussion: """
        Writes the graph scripts/export-onnx.py writes as full.onnx: input `image`, (N, the model's \
        input shape) with a dynamic batch N, as `branchy infer` takes prepared inputs; every stage's \
        trunk chained; one output per exit, `logits_<exit name>`, in stage order; opset 17. Each \
        layer becomes the ONNX nodes docs/operators.md lists; a batch norm directly after a \
        convolution is folded into it, as compiled inference does. --stages also writes one graph \
        per stage (input `input`; outputs `features` and `logits`). Nothing is written when a layer \
        has no ONNX form; the error names the stage, the layer and its op.
        """)

    @Option(help: "Model directory.")
    var model: String = ModelOptions.defaultModel

    @Option(help: "The ONNX file to write (replaced if it exists).")
    var output: String

    @Option(help: "Also write one graph per stage, DIR/<stage>.onnx (the folder created if missing).")
    var stages: String?

    @Flag(help: "Export every batch norm as a BatchNormalization node (default: fold those right after a convolution).")
    var unfoldedBatchnorm = false

    func run() throws {
        let file = URL(fileURLWithPath: output)
        var isDirectory: ObjCBool = false
        let folder = file.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--output \(output): no folder \(folder)")
        }
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let files: [URL]
        do {
            files = try ONNXExporter.write(m.network, to: file, stages: stages.map { URL(fileURLWithPath: $0) },
                                           foldBatchNorm: !unfoldedBatchnorm)
        } catch let e as ExportError {
            throw CommandError("\(model): \(e.description); nothing written")
        } catch let e as ExportFileError {
            throw CommandError("\(e.description); nothing written")
        }
        let exits = m.network.stages.map { ONNXExporter.logitsName(exit: $0.exitName) }
        for f in files.dropLast() { print("wrote \(f.path)") }
        print("wrote \(output): model \(m.spec.name), input \(ONNXExporter.imageInput) (N, \(m.spec.input.map(String.init).joined(separator: ", "))), "
              + "outputs \(exits.joined(separator: ", ")), opset \(ONNXExporter.opset)")
    }
}
