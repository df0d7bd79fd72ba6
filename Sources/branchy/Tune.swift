import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose a trained model's default thresholds again on the training samples held out at training time.")

    @Option(help: "Model directory.") var model: String = ModelOptions.defaultModel
    @Option(help: "Directory holding the training set (IDX or CIFAR-10 binary).") var data: String = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Held-out samples (as given to train).") var validation: Int = 5000
    @Option(help: "Seed given to train (it fixes which samples were held out).") var seed: UInt64 = 1
    @Option(help: "Accuracy loss allowed against the final exit alone, in points, on the held-out samples.") var tolerance: Double = 0.1
    @Option(help: "Test set for the model card (default: test_batch.bin in --data for CIFAR-10, else data/fashion-mnist).") var test: String?
    @Flag(help: "Write the thresholds into model.json and update MODEL_CARD.md.") var write = false

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let m = try Model.load(directory: dir)
        let codecName = m.spec.defaults?.codec ?? "int8"
        let codec = try LinkCodecs.parse(codecName, stages: m.network.stages.count)
        let all = try ImageDataset.load(directory: URL(fileURLWithPath: data), split: .train, for: m.spec.input, preprocessing: m.spec.preprocessing)
        let (_, held) = split(all, holdOut: validation, seed: seed)
        let t = try chooseThresholds(network: m.network, validation: held, codec: codec, tolerance: tolerance)
        print("thresholds chosen on \(held.count) held-out samples (tolerance \(tolerance) points): " + t.map { String(format: "%g", $0) }.joined(separator: ","))
        guard write else { return }
        var spec = m.spec
        spec.defaults = .init(thresholds: t, codec: codecName)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(spec).write(to: dir.appendingPathComponent(Model.specFileName))
        let updated = try Model.load(directory: dir)
        let test = try self.test ?? (DatasetFormat.detect(directory: URL(fileURLWithPath: data)) == .cifar10 ? data : "data/fashion-mnist")
        let testSet = try ImageDataset.load(path: test, for: m.spec.input, preprocessing: m.spec.preprocessing)
        let report = EvalReport(trace: try Evaluator.trace(network: updated.network, data: testSet, links: codec),
                                policy: ExitPolicy(thresholds: t), codec: codecName)
        print(report.table, terminator: "")
        let cardURL = dir.appendingPathComponent("MODEL_CARD.md")
        guard var card = try? String(contentsOf: cardURL, encoding: .utf8) else { return }
        var lines = card.components(separatedBy: "\n")
        for i in lines.indices {
            if lines[i].hasPrefix("- fingerprint ") { lines[i] = "- fingerprint `\(updated.fingerprintHex)`" }
            if lines[i].hasPrefix("- default thresholds ") {
                lines[i] = "- default thresholds " + t.map { String(format: "%g", $0) }.joined(separator: ", ")
                    + " (entropy, natural log), codec \(codecName); chosen by `branchy tune --tolerance \(tolerance)` on the \(held.count) held-out samples"
            }
        }
        card = lines.joined(separator: "\n")
        if let start = card.range(of: "## Test set"), let end = card.range(of: "## Training log") {
            card.replaceSubrange(start.lowerBound..<end.lowerBound, with:
                "## Test set (`\(test)`, \(report.samples) images, default thresholds, codec \(codecName))\n\n```\n\(report.table)```\n\n")
        }
        try card.write(to: cardURL, atomically: true, encoding: .utf8)
        print("updated \(dir.path)")
    }
}
