import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

/// The short Markdown card written next to a trained model.
struct ModelCard {
    var model: Model
    var config: TrainingConfig
    var trainSamples: Int
    var validationSamples: Int
    var dataPath: String
    /// What the training images are, e.g. `CIFAR-10 binary, 3×32×32 images`.
    var dataKind: String
    var seconds: Double
    var epochLog: [String]
    var test: (path: String, report: EvalReport)?

    var markdown: String {
        let spec = model.spec
        var s = "# Model card: \(spec.name)\n\n"
        s += "Trained by `branchy train` (this repository's Swift engine).\n\n"
        s += "- data: training set (\(dataKind)) from `\(dataPath)`: \(trainSamples) samples for training, \(validationSamples) held out to choose the thresholds\n"
        s += "- epochs \(config.epochs), batch \(config.batchSize), Adam, peak learning rate \(config.learningRate) with warm-up and cosine decay, "
        s += "exit weights \(config.exitWeights), weight decay \(config.weightDecay), horizontal flips \(config.flip), shifts \(config.shift), seed \(config.seed)\n"
        s += String(format: "- training time %.0f s on %d threads, %.1f s per epoch\n", seconds, Parallel.threads,
                    seconds / Double(max(1, config.epochs)))
        s += "- fingerprint `\(model.fingerprintHex)`\n"
        if let d = spec.defaults {
            s += "- default thresholds \(d.thresholds.map { String(format: "%g", $0) }.joined(separator: ", ")) (entropy, natural log), codec \(d.codec ?? "float32")\n"
        }
        if let why = Architectures.rationale(spec.name) { s += "\n## Layout\n\n\(why)\n" }
        s += "\n## Stages\n\n| stage | input | forwarded features | exit | parameters |\n|---|---|---|---|---|\n"
        for st in model.network.stages {
            let params = (st.trunk + st.exit).flatMap(\.parameters).reduce(0) { $0 + $1.value.count }
            s += "| \(st.name) | \(st.inputShape) | \(st.outputShape) = \(st.outputShape.reduce(1, *)) values | \(st.exitName) | \(params) |\n"
        }
        if let test {
            s += "\n## Test set (`\(test.path)`, \(test.report.samples) images, default thresholds, codec \(test.report.codec))\n\n```\n\(test.report.table)```\n"
        }
        s += "\n## Training log\n\n```\n" + epochLog.joined(separator: "\n") + "\n```\n"
        return s
    }
}
