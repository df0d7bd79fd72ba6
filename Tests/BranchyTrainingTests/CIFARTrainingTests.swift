import BranchyData
import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyTraining

/// A 3×32×32 network trained and evaluated on a synthetic set in CIFAR-10's binary format,
/// written to disk and read back the way `branchy train` reads a directory.
@Suite struct CIFARTrainingTests {
    /// Two stages on 3×32×32 inputs: a strided convolution to 6×8×8 with a linear exit, then a
    /// convolution, batch normalisation and pooling to 8×4×4 with a linear exit.
    static let spec = ModelSpec(name: "cifar-test", input: [3, 32, 32], classes: 10, stages: [
        StageSpec(name: "a", trunk: [.conv("c1", out: 6, kernel: 4, stride: 4), .relu],
                  exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 10)])),
        StageSpec(name: "b", trunk: [
            .conv("c2", out: 8, kernel: 3, pad: 1), .batchNorm("bn2", momentum: 0.1), .maxPool(2), .relu,
        ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc", out: 10)])),
    ])

    @Test func learnsTheSyntheticSet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-cifar-training-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticCIFAR10.write(to: dir, train: 1000, test: 200, seed: 11)
        #expect(try DatasetFormat.detect(directory: dir) == .cifar10)
        let train = try ImageDataset.load(directory: dir, split: .train)
        let test = try ImageDataset.load(path: dir.path)
        #expect(train.count == 1000 && test.count == 200 && train.shape == Self.spec.input)

        let network = try Network(spec: Self.spec)
        network.initialize(seed: 2)
        var config = TrainingFixture.config(epochs: 4, batchSize: 20, learningRate: 0.01, exitWeights: [1, 1], seed: 2)
        config.flip = true  // flips act on every channel plane
        let trainer = try Trainer(network: network, config: config)
        var summaries: [Trainer.EpochSummary] = []
        try trainer.train(on: train) { summaries.append($0) }
        #expect(summaries.last!.loss < summaries.first!.loss, "losses \(summaries.map(\.loss))")

        let report = EvalReport(trace: try Evaluator.trace(network: network, data: test), policy: ExitPolicy(thresholds: [0.5]), codec: "float32")
        #expect(report.samples == 200)
        #expect(report.finalOnlyAccuracy > 0.75, "final exit alone \(report.finalOnlyAccuracy)")
        #expect(report.accuracy > 0.7, "with early exits \(report.accuracy)")
    }

    @Test func greyscaleModelRefusesColourImages() throws {
        let network = try Network(spec: TrainingFixture.tinySpec)
        let colour = ImageDataset(images: [Float](repeating: 0, count: 2 * 3 * 36), labels: [0, 1], channels: 3, rows: 6, cols: 6)
        let error = #expect(throws: TrainingError.self) { try network.checkInput(of: colour) }
        #expect(error?.description == "the data set's images are 3×6×6, but model tiny expects [1, 6, 6]")
    }
}
