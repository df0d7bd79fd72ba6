import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train an early-exit network jointly on all exits and write a model directory with its card.")

    @Option(help: "Built-in architecture: \(Architectures.names.joined(separator: ", ")).")
    var arch: String = "b-resnet3"

    @Option(help: "A model.json to train instead of a built-in architecture.")
    var spec: String?

    @Option(help: ArgumentHelp("Directory holding the training set: IDX (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]) or CIFAR-10 binary (data_batch_1.bin … data_batch_5.bin).",
                               discussion: "The format is told by the file names."))
    var data: String = "/usr/share/datasets/fashion-mnist"

    @Option(help: "Test set for the model card (default: test_batch.bin in --data for CIFAR-10, else data/fashion-mnist).")
    var test: String?

    @Option(help: "Output model directory.")
    var out: String

    @Option var epochs: Int = 15
    @Option var batch: Int = 128
    @Option(help: "Peak learning rate (cosine decay).") var lr: Float = 0.002
    @Option(help: "Joint-loss weight of each exit, comma-separated.") var exitWeights: String?
    @Option var weightDecay: Float = 0
    @Option var seed: UInt64 = 1
    @Flag(inversion: .prefixedNo, help: "Random horizontal flips.") var flip = true
    @Option(help: "Random shifts of up to N pixels.") var shift: Int = 0
    @Option(help: "Train on the first N samples only.") var limit: Int?
    @Option(help: "Training samples held out to choose the thresholds.") var validation: Int = 5000
    @Option(help: "Accuracy loss allowed against the final exit alone when choosing thresholds, in points.")
    var tolerance: Double = 0.1
    @Option(help: "Feature codec stored as the model's default.") var codec: String = "int8"
    @Option(help: "Worker threads.") var threads: Int?

    func validate() throws {
        if spec == nil && Architectures.named(arch) == nil {
            throw ValidationError("--arch: unknown architecture '\(arch)' (known: \(Architectures.names.joined(separator: ", ")))")
        }
        // Names only: how many codecs the model takes is known once its stages are (checked below).
        for name in codec.split(separator: ",", omittingEmptySubsequences: false) where FeatureCodec(name.trimmingCharacters(in: .whitespaces)) == nil {
            throw ValidationError("--codec: unknown codec '\(name)' (expected \(FeatureCodec.namesHelp))")
        }
        guard epochs >= 1, batch >= 1, lr > 0, validation >= 0 else { throw ValidationError("epochs, batch and lr must be positive") }
    }

    func run() throws {
        if let threads { Parallel.threads = max(1, threads) }
        var modelSpec = try spec.map { try Model.readSpec(URL(fileURLWithPath: $0)) } ?? Architectures.named(arch)!
        modelSpec.defaults = nil
        let network = try Network(spec: modelSpec, file: spec ?? arch)
        var config = TrainingConfig()
        config.epochs = epochs; config.batchSize = batch; config.learningRate = lr
        config.exitWeights = try exitWeights.map { try parseFloats($0, "--exit-weights") } ?? [Float](repeating: 1, count: network.stages.count)
        config.weightDecay = weightDecay; config.seed = seed; config.flip = flip; config.shift = shift
        network.initialize(seed: seed)

        let dataURL = URL(fileURLWithPath: data)
        let format = try DatasetFormat.detect(directory: dataURL)
        let all = try ImageDataset.load(directory: dataURL, split: .train)
        guard all.shape == modelSpec.input else {
            throw ValidationError("\(data): images are \(all.shapeDescription) but \(modelSpec.name) expects \(modelSpec.input)")
        }
        let (trainSet, valSet) = split(all, holdOut: validation, seed: seed)
        config.limit = limit
        printError("training \(modelSpec.name) on \(trainSet.count) \(all.shapeDescription) images from \(data) (\(format)), "
                   + "\(valSet.count) held out, \(Parallel.threads) threads")
        let trainer = try Trainer(network: network, config: config)
        var log: [String] = []
        let started = Date()
        try trainer.train(on: trainSet) { e in
            let accs = e.exitAccuracy.map { String(format: "%.2f%%", 100 * $0) }.joined(separator: " / ")
            let line = "epoch \(e.epoch): " + String(format: "loss %.4f", e.loss) + ", train accuracy per exit \(accs), " + String(format: "%.1f s", e.seconds)
            printError(line)
            log.append(line)
        }
        let seconds = Date().timeIntervalSince(started)
        let codecKind = try LinkCodecs.parse(codec, stages: modelSpec.stages.count)

        // Thresholds are chosen on the held-out training samples, never on the test set.
        let thresholds = try chooseThresholds(network: network, validation: valSet, codec: codecKind, tolerance: tolerance)
        modelSpec.defaults = .init(thresholds: thresholds, codec: codec)
        let finalNetwork = try Network(spec: modelSpec, file: spec ?? arch)
        for (name, t) in network.namedTensors { finalNetwork.assign(name, t) }
        let outURL = URL(fileURLWithPath: out)
        let model = try Model.save(finalNetwork, to: outURL, metadata: ["arch": modelSpec.name, "seed": "\(seed)", "epochs": "\(epochs)"])

        var card = ModelCard(model: model, config: config, trainSamples: trainSet.count, validationSamples: valSet.count,
                             dataPath: data, dataKind: "\(format), \(all.shapeDescription) images", seconds: seconds, epochLog: log)
        // The card's test section is optional: left out when the test set is missing or of other images.
        let test = self.test ?? (format == .cifar10 ? data : "data/fashion-mnist")
        if let testSet = try? ImageDataset.load(path: test),
           let trace = try? Evaluator.trace(network: model.network, data: testSet, links: codecKind) {
            card.test = (test, EvalReport(trace: trace, policy: ExitPolicy(thresholds: thresholds), codec: codec))
        }
        try card.markdown.write(to: outURL.appendingPathComponent("MODEL_CARD.md"), atomically: true, encoding: .utf8)
        print(card.markdown)
    }

}

/// Splits off `holdOut` samples chosen by a seeded shuffle: (training, held out).
func split(_ d: ImageDataset, holdOut: Int, seed: UInt64) -> (ImageDataset, ImageDataset) {
    var rng = SeededRandom(seed: seed ^ 0xA11CE)
    var order = Array(0..<d.count)
    order.shuffle(using: &rng)
    let h = min(holdOut, d.count - 1)
    return (d.subset(order[h...]), d.subset(order[..<h]))
}

/// The thresholds that send most samples out early while the held-out accuracy stays within
/// `tolerance` points of the last exit alone (BranchyNet's screening, on a finer grid).
func chooseThresholds(network: Network, validation: ImageDataset, codec: LinkCodecs, tolerance: Double) throws -> [Float] {
    var thresholds = [Float](repeating: 0, count: network.stages.count - 1)
    guard validation.count > 0 else { return thresholds }
    let trace = try Evaluator.trace(network: network, data: validation, links: codec)
    let finalOnly = EvalReport(trace: trace, policy: ExitPolicy(thresholds: thresholds), codec: "").finalOnlyAccuracy
    if let pick = BranchyTraining.Sweep.choose(BranchyTraining.Sweep.run(trace: trace, grid: BranchyTraining.Sweep.fineGrid),
                                                finalOnly: finalOnly, tolerance: tolerance / 100) {
        thresholds = pick.thresholds
    }
    return thresholds
}
