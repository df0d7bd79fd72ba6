import ArgumentParser
import BranchyData
import BranchyModel
import Foundation

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every exit of a model on an array of inputs and write the logits.",
        discussion: """
        Reads a .npy array of shape (N, C, H, W) (the model's input shape after N; float32, float64 \
        or uint8 values taken as they are), runs every stage on every sample with compiled inference \
        (no early exit, float32 features between stages) and writes OUTPUT-DIR/exit-K.npy, float32 \
        (N, classes), for each exit K counted from 0.
        """)

    @Option(help: "Model directory.")
    var model: String = ModelOptions.defaultModel

    @Option(help: "The inputs: a .npy array (N, C, H, W).")
    var input: String

    @Option(help: "Where to write exit-K.npy (created if missing).")
    var outputDir: String = "."

    func run() throws {
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let array: NPYArray
        do { array = try NPYArray.read(URL(fileURLWithPath: input)) } catch let e as NPYArray.Error { throw CommandError(e.description) }
        guard array.shape.count == m.spec.input.count + 1, Array(array.shape.dropFirst()) == m.spec.input else {
            throw CommandError("\(input): shape \(array.shape) does not match the model's input (N, \(m.spec.input.map(String.init).joined(separator: ", ")))")
        }
        let n = array.shape[0]
        let compiled = CompiledNetwork(m.network)
        let workspace = compiled.makeWorkspace()
        let directory = URL(fileURLWithPath: outputDir)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var current = array.values
        for (k, stage) in compiled.stages.enumerated() {
            var features = [Float](repeating: 0, count: max(1, n * stage.featureCount))
            var logits = [Float](repeating: 0, count: max(1, n * compiled.classes))
            if n > 0 {
                current.withUnsafeBufferPointer { x in
                    features.withUnsafeMutableBufferPointer { f in
                        logits.withUnsafeMutableBufferPointer { l in
                            compiled.run(stage: k, count: n, input: x.baseAddress!, features: f.baseAddress!, logits: l.baseAddress!, workspace: workspace)
                        }
                    }
                }
            }
            let out = NPYArray(shape: [n, compiled.classes], values: Array(logits.prefix(n * compiled.classes)))
            try Data(out.encoded()).write(to: directory.appendingPathComponent("exit-\(k).npy"))
            current = Array(features.prefix(n * stage.featureCount))
        }
        print("wrote \(compiled.stages.count) exits × \(n) samples to \(outputDir)")
    }
}
