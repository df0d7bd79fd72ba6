import BranchyData
import BranchyImport
import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

/// Trains the exits `branchy import --add-exit` attached: the imported trunk stays frozen, so
/// each head learns alone from the tensor it reads, computed once for every training sample.
struct AddedExitTraining {
    var epochs: Int
    var seed: UInt64

    /// One head's figures: accuracy on the training samples (last epoch) and on the check set.
    struct Figures {
        var exit: String
        var trainAccuracy: Float
        var checkAccuracy: Float?
        var seconds: Double
    }

    /// Fills `result.tensors` with the trained heads of `result.addedExits`, from `train`; reports
    /// each head's accuracy on `check` (held-out or test samples) when given.
    func train(_ result: inout ONNXImporter.Result, on train: ImageDataset, check: ImageDataset?) throws -> [Figures] {
        let network = try Network(spec: result.spec)
        for (name, tensor) in result.tensors { _ = network.assign(name, tensor) }
        let compiled = CompiledNetwork(network)
        var figures: [Figures] = []
        for (stage, shape) in result.addedExits {
            let start = Date()
            let spec = result.spec.stages[stage]
            let input = shape.count == 3 ? shape : [shape.reduce(1, *), 1, 1]
            let features = Self.features(compiled, stage: stage, data: train, shape: input)
            let head = ModelSpec(name: "head", input: input, classes: result.spec.classes, stages: [
                StageSpec(name: "head", trunk: [], exit: ExitSpec(name: spec.exit.name, layers: spec.exit.layers)),
            ])
            let headNetwork = try Network(spec: head)
            headNetwork.initialize(seed: seed &+ UInt64(stage))
            var config = TrainingConfig()
            config.epochs = epochs
            config.exitWeights = [1]
            config.flip = false
            config.seed = seed
            config.learningRate = 0.003
            var last: Float = 0
            printError("training the head of exit '\(spec.exit.name)' on \(train.count) samples' \(shape) tensors")
            try Trainer(network: headNetwork, config: config).train(on: features) { last = $0.exitAccuracy[0] }
            for (name, tensor) in headNetwork.namedTensors {
                result.tensors[name.replacingOccurrences(of: "head.exit.", with: "\(spec.name).exit.")] = tensor
            }
            var checkAccuracy: Float? = nil
            if let check {
                let x = Self.features(compiled, stage: stage, data: check, shape: input)
                let logits = headNetwork.exitLogits(0, headNetwork.trunk(0, Tensor(shape: [x.count] + input, data: x.images)))
                let c = result.spec.classes
                var right = 0
                for s in 0..<x.count {
                    let row = logits.data[(s * c)..<((s + 1) * c)]
                    if row.indices.max(by: { row[$0] < row[$1] })! - s * c == Int(x.labels[s]) { right += 1 }
                }
                checkAccuracy = Float(right) / Float(max(1, x.count))
            }
            figures.append(Figures(exit: spec.exit.name, trainAccuracy: last, checkAccuracy: checkAccuracy,
                                   seconds: Date().timeIntervalSince(start)))
        }
        return figures
    }

    /// The trunk's tensor at the end of `stage` (stages 0 through `stage` chained) for every
    /// sample of `data`, as a data set of `shape` with the same labels.
    static func features(_ compiled: CompiledNetwork, stage: Int, data: ImageDataset, shape: [Int]) -> ImageDataset {
        let workspace = compiled.makeWorkspace()
        let per = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: data.count * per)
        let batch = 256
        var start = 0
        while start < data.count {
            let n = min(batch, data.count - start)
            var current = data.batch(indices: start..<(start + n)).images
            for k in 0...stage { current = compiled.run(stage: k, count: n, input: current, workspace: workspace).features }
            out.replaceSubrange((start * per)..<((start + n) * per), with: current)
            start += n
        }
        return ImageDataset(images: out, labels: Array(data.labels.prefix(data.count)), channels: shape[0], rows: shape[1], cols: shape[2])
    }
}
