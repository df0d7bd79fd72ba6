import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyImport

/// The ONNX export: the shipped models and a network of every importable operator form written
/// as one graph and read back with the importer give the same logits; the other operators'
/// nodes; the graphs' inputs and outputs; errors naming the layer; nothing left on failure.
@Suite struct ONNXExporterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The largest logit difference allowed, times max(1, the largest |logit|): float32 sums in
    /// another order and folded batch norms stay far below it.
    static let tolerance: Float = 1e-4

    /// Every exit's logits on `x`, the stages chained (the layers' forward passes).
    static func logits(_ network: Network, _ x: Tensor) -> [Tensor] {
        var features = x
        return network.stages.indices.map { i in
            features = network.trunk(i, features)
            return network.exitLogits(i, features)
        }
    }

    /// `count` samples of `shape`, uniform in [lo, hi).
    static func inputs(_ shape: [Int], count: Int = 3, seed: UInt64 = 7, lo: Float = 0, hi: Float = 1) -> Tensor {
        var rng = SeededRandom(seed: seed)
        var x = Tensor(shape: [count] + shape)
        for i in 0..<x.count { x.data[i] = rng.uniform(lo, hi) }
        return x
    }

    /// Exports `network` whole, imports the file back and checks that both give the same logits
    /// at every exit on a few random inputs.
    static func roundTrip(_ network: Network, foldBatchNorm: Bool = true, lo: Float = 0, hi: Float = 1) throws {
        let dir = try ONNXImporterTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("full.onnx")
        try ONNXExporter.fullModel(network, foldBatchNorm: foldBatchNorm).write(to: url)
        let imported = try ONNXImporter.importModel(url)
        #expect(imported.spec.input == network.spec.input && imported.spec.classes == network.spec.classes)
        #expect(imported.spec.stages.map(\.exit.name) == network.stages.map { ONNXExporter.logitsName(exit: $0.exitName) })
        let back = try Network(spec: imported.spec)
        for (name, tensor) in imported.tensors { #expect(back.assign(name, tensor), "\(name)") }
        let x = inputs(network.spec.input, lo: lo, hi: hi)
        for (k, (ours, theirs)) in zip(logits(network, x), logits(back, x)).enumerated() {
            #expect(ours.shape == theirs.shape)
            let scale = max(1, ours.data.map(abs).max() ?? 0)
            let worst = zip(ours.data, theirs.data).map { abs($0 - $1) }.max() ?? .nan
            #expect(worst <= tolerance * scale, "\(network.spec.name), exit \(k): largest logit difference \(worst)")
        }
    }

    /// Every shipped model the importer reads back (b-lenet3-bin's sign and binary layers become
    /// Where and GreaterOrEqual nodes, which it does not map).
    @Test(arguments: ["b-lenet", "b-lenet3", "b-resnet3", "mobilenet-exits", "resnet-exits"])
    func shippedModelsReadBackAlike(_ name: String) throws {
        let model = try Model.load(directory: Self.root.appendingPathComponent("models/\(name)"))
        try Self.roundTrip(model.network)
        if name == "b-resnet3" { try Self.roundTrip(model.network, foldBatchNorm: false) }
    }

    /// A network of every operator form the importer maps: grouped and dilated convolutions,
    /// batch norms folded and not (after a grouped convolution, on a flat input), the
    /// activations, ceil-mode and padded pooling, residual blocks with and without a
    /// projection, and branches merged by mul (a gate of shape (C, 1, 1)), concat and add.
    @Test func everyImportableOperatorReadsBackAlike() throws {
        let spec = ModelSpec(name: "every-op", input: [4, 9, 9], classes: 5, stages: [
            StageSpec(name: "device", trunk: [
                .conv("c1", out: 8, kernel: 3, pad: 1), .batchNorm("bn1"), .relu,
                LayerSpec(op: "conv", name: "dw", out: 8, kernel: 3, pad: 2, groups: 8, dilation: 2), .batchNorm("bn2"),
                .clip(min: 0, max: 6),
                .branches("se", merge: "mul", [[], [.globalAvgPool, .conv("se1", out: 8, kernel: 1),
                                                     LayerSpec(op: "hardsigmoid", alpha: 0.25, beta: 0.4)]]),
                .residual("r1", [.conv("r1c", out: 8, kernel: 3, pad: 1), LayerSpec(op: "leakyrelu", alpha: 0.1)]),
            ], exit: ExitSpec(name: "early", layers: [.globalAvgPool, .flatten, .linear("fc1", out: 5)])),
            StageSpec(name: "cloud", trunk: [
                .branches("cat", merge: "concat", [[.conv("b0", out: 4, kernel: 1)], [LayerSpec(op: "maxpool", kernel: 3, stride: 1, pad: 1)]]),
                .branches("sum", merge: "add", [[LayerSpec(op: "sigmoid")], [LayerSpec(op: "hardswish")], []]),
                LayerSpec(op: "avgpool", kernel: 3, stride: 2, pad: 1, ceil: true),
                .maxPool(2, ceil: true),
                LayerSpec(op: "conv", name: "c3", out: 6, kernel: 3, pad: 1, bias: false), .batchNorm("bn3"),
                .residual("r2", [.conv("r2c", out: 6, kernel: 1)], shortcut: [.conv("r2p", out: 6, kernel: 1)]),
            ], exit: ExitSpec(name: "final", layers: [.flatten, .linear("h", out: 7), .batchNorm("bnf"), .relu,
                                                      LayerSpec(op: "linear", name: "fc2", out: 5, bias: false)])),
        ])
        try Self.roundTrip(try Self.randomized(spec), lo: -1, hi: 1)
    }

    /// `spec` built with random weights and batch-norm statistics.
    static func randomized(_ spec: ModelSpec) throws -> Network {
        let network = try Network(spec: spec)
        network.initialize(seed: 3)
        var rng = SeededRandom(seed: 11)
        for (name, t) in network.namedTensors where t.rank == 1 {
            let (lo, hi): (Float, Float) = name.hasSuffix(".running_var") || name.hasSuffix(".weight") ? (0.5, 1.5) : (-0.3, 0.3)
            network.assign(name, Tensor(shape: t.shape, data: (0..<t.count).map { _ in rng.uniform(lo, hi) }))
        }
        return network
    }
}
