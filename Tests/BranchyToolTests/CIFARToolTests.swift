import ArgumentParser
import BranchyData
import BranchyModel
import Foundation
import Testing
@testable import branchy

/// The tool's CIFAR-10 path in one process: `make-synthetic-cifar`, `train --spec` on the
/// directory it wrote, then `eval` of the saved model; and a greyscale model refusing the set.
@Suite struct CIFARToolTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func makeTrainEval() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-cifar-tool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("synthetic").path
        let out = dir.appendingPathComponent("model").path
        try MakeSyntheticCIFAR.parse(["--out", data, "--train", "300", "--test", "100", "--seed", "5"]).run()
        #expect(try DatasetFormat.detect(directory: URL(fileURLWithPath: data)) == .cifar10)

        try Train.parse(["--spec", Self.root.appendingPathComponent("scripts/lib/cifar-tiny.json").path, "--data", data, "--out", out,
                         "--epochs", "2", "--batch", "20", "--lr", "0.005", "--validation", "50"]).run()
        let model = try Model.load(directory: URL(fileURLWithPath: out))
        #expect(model.spec.name == "cifar-tiny" && model.spec.input == [3, 32, 32])
        #expect(model.spec.defaults?.thresholds.count == 2)
        let card = try String(contentsOfFile: out + "/MODEL_CARD.md", encoding: .utf8)
        #expect(card.contains("- data: training set (CIFAR-10 binary, 3×32×32 images) from `\(data)`: 250 samples for training, 50 held out"))
        #expect(card.contains("## Test set (`\(data)`, 100 images"))

        let (_, test, _) = try ModelOptions.parse(["--model", out, "--dataset", data]).load()
        #expect(test.count == 100 && test.shape == [3, 32, 32])
        let predictions = dir.appendingPathComponent("predictions.jsonl").path
        try Eval.parse(["--model", out, "--dataset", data + "/test_batch.bin", "--predictions", predictions]).run()
        let lines = try String(contentsOfFile: predictions, encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let rows = objects.map { $0.compactMapValues { $0 as? Int } }
        #expect(rows.map { $0["sample"] } == (0..<100).map { $0 })
        #expect(rows.allSatisfy { (0..<3).contains($0["exit"]!) && (0..<10).contains($0["class"]!) })
        // The entropy at every exit a sample reached, each finite and at most ln(10).
        for (row, object) in zip(rows, objects) {
            let entropies = try #require(object["entropies"] as? [Double])
            #expect(entropies.count == row["exit"]! + 1 && entropies.allSatisfy { $0 >= 0 && $0 <= log(10.0) + 1e-5 })
        }
    }

    @Test func aGreyscaleModelRefusesTheSet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-cifar-tool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticCIFAR10.write(to: dir, train: 1, test: 3, seed: 1)
        let options = try ModelOptions.parse(["--model", Self.root.appendingPathComponent("models/b-lenet3").path, "--dataset", dir.path])
        let error = #expect(throws: PreprocessingError.self) { try options.load() }
        #expect(error?.description == "\(dir.path): images have 3 channels but the model takes 1")
    }
}
