import BranchyTensor
import Foundation
@testable import BranchyModel

/// Small model descriptions and helpers shared by the network, loading and gradient tests.
enum ModelFixture {
    /// A two-stage model on 1×6×6 inputs with three classes:
    /// conv → maxpool (3, stride 2, ceil) → relu | flatten → linear, then
    /// conv → relu | flatten → linear → relu → linear.
    static var tiny: ModelSpec {
        ModelSpec(name: "tiny", input: [1, 6, 6], classes: 3, stages: [
            StageSpec(name: "a", trunk: [
                .conv("c1", out: 3, kernel: 3, pad: 1), .maxPool(3, stride: 2, ceil: true), .relu,
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 3)])),
            StageSpec(name: "b", trunk: [
                .conv("c2", out: 4, kernel: 2), .relu,
            ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc1", out: 5), .relu, .linear("fc2", out: 3)])),
        ])
    }

    /// Like `tiny` but with batch normalisation (on images and on a flat vector) and average pooling.
    static var tinyBatchNorm: ModelSpec {
        ModelSpec(name: "tiny-bn", input: [1, 6, 6], classes: 3, stages: [
            StageSpec(name: "a", trunk: [
                .conv("c1", out: 3, kernel: 3, pad: 1), LayerSpec(op: "batchnorm", name: "bn1"),
                LayerSpec(op: "avgpool", kernel: 3, stride: 2, ceil: true), .relu,
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 3)])),
            StageSpec(name: "b", trunk: [
                LayerSpec(op: "conv", name: "c2", out: 4, kernel: 2, bias: false), LayerSpec(op: "batchnorm", name: "bn2"), .relu,
            ], exit: ExitSpec(name: "exit-b", layers: [
                .flatten, .linear("fc1", out: 5), LayerSpec(op: "batchnorm", name: "bn3", epsilon: 1e-3), .relu, .linear("fc2", out: 3),
            ])),
        ])
    }

    /// Builds `spec` and fills every tensor (weights, biases, batch-norm γ, β and running
    /// statistics) with seeded random values, so that no parameter sits at a special value.
    static func randomNetwork(_ spec: ModelSpec, seed: UInt64) throws -> Network {
        let network = try Network(spec: spec)
        var rng = SeededRandom(seed: seed)
        for (name, shape) in network.expectedTensors {
            let n = shape.reduce(1, *)
            let values: [Float]
            if name.hasSuffix(".running_var") {
                values = (0..<n).map { _ in rng.uniform(0.5, 2) }
            } else if name.hasSuffix(".running_mean") {
                values = (0..<n).map { _ in rng.uniform(-0.3, 0.3) }
            } else {
                let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
                let bound = shape.count >= 2 ? (3 / Float(fanIn)).squareRoot() : 0.5
                let centre: Float = name.hasSuffix(".weight") && shape.count == 1 ? 1 : 0 // batch-norm γ near 1
                values = (0..<n).map { _ in centre + rng.uniform(-bound, bound) }
            }
            network.assign(name, Tensor(shape: shape, data: values))
        }
        return network
    }

    /// A seeded batch of `count` inputs of `shape` with values in [-1, 1).
    static func randomInput(_ shape: [Int], count: Int, seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        let n = count * shape.reduce(1, *)
        return Tensor(shape: [count] + shape, data: (0..<n).map { _ in rng.uniform(-1, 1) })
    }

    /// Builds `spec`, expecting a `ModelError`; returns nil when building succeeds or throws something else.
    static func buildError(_ spec: ModelSpec, file: String = "model.json") -> ModelError? {
        do {
            _ = try Network(spec: spec, file: file)
            return nil
        } catch {
            return error as? ModelError
        }
    }

    /// Loads a model directory, expecting an error; returns nil when loading succeeds.
    static func loadError(_ directory: URL) -> Error? {
        do {
            _ = try Model.load(directory: directory)
            return nil
        } catch {
            return error
        }
    }
}

/// A scratch directory removed when the value is released.
final class ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-model-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A path inside the directory (not created).
    func path(_ name: String) -> URL { url.appendingPathComponent(name) }
}
