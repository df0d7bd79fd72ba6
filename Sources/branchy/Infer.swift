import ArgumentParser
import BranchyData
import BranchyModel
import Foundation

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every exit of a model on an array of inputs and write the logits.",
        discussion: """
        Reads a .npy array of images, (N, C, H, W), (N, H, W, C) or (N, H, W), or any data set \
        (its labels unused), prepares it as the model's card records (bytes are pixels and are \
        prepared; float arrays are prepared inputs and must have the model's input shape), runs \
        every stage on every sample with compiled inference (no early exit, float32 features \
        between stages) and writes OUTPUT-DIR/exit-K.npy, float32 (N, classes), for each exit K \
        counted from 0.
        """)

    @Option(help: "Model directory.")
    var model: String = ModelOptions.defaultModel

    @Option(help: "The inputs: a .npy array of images, or a data set (.npz, IMAGES.npy,LABELS.npy, a directory, IDX or CIFAR-10 file).")
    var input: String

    @Option(help: "Where to write exit-K.npy (created if missing).")
    var outputDir: String = "."

    func run() throws {
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let data: ImageDataset
        do {
            if input.hasSuffix(".npy") && !input.contains(",") {
                let array = try NPYArray.read(URL(fileURLWithPath: input))
                let labels = NPYArray(shape: [array.shape.first ?? 0], values: [Float](repeating: 0, count: array.shape.first ?? 0))
                data = try (m.spec.preprocessing ?? .standard).prepare(try ImageDataset.fromArrays(x: array, y: labels, file: input),
                                                                       input: m.spec.input, source: input)
            } else {
                data = try ImageDataset.load(path: input, for: m.spec.input, preprocessing: m.spec.preprocessing)
            }
        } catch let e as NPYArray.Error { throw CommandError(e.description) } catch let e as PreprocessingError { throw CommandError(e.description) }
        let n = data.count
        let compiled = CompiledNetwork(m.network)
        let workspace = compiled.makeWorkspace()
        let directory = URL(fileURLWithPath: outputDir)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var current = data.images
        for k in compiled.stages.indices {
            let (features, logits) = compiled.run(stage: k, count: n, input: current, workspace: workspace)
            let out = NPYArray(shape: [n, compiled.classes], values: logits)
            try Data(out.encoded()).write(to: directory.appendingPathComponent("exit-\(k).npy"))
            current = features
        }
        print("wrote \(compiled.stages.count) exits × \(n) samples to \(outputDir)")
    }
}
