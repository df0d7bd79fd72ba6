import BranchyModel
import BranchyTensor

/// Runs the stages a node hosts on one sample and applies the early-exit rule after each.
public struct StageRunner: Sendable {
    /// What running the hosted stages gave.
    public enum Outcome: Sendable {
        /// An exit here was sure enough (or it was the model's last exit).
        case exited(exit: Int, ExitOutput)
        /// Not sure: `features` must go to stage `nextStage` upstream. `best` is the last exit
        /// computed here, the answer to give if upstream cannot.
        case forward(features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput))
    }

    public let network: Network
    public let stageIndices: [Int]
    public let policy: ExitPolicy

    public init(context: NodeContext) {
        network = context.model.network
        stageIndices = context.stageIndices
        policy = context.policy
    }

    /// Shape of one input item of the first hosted stage.
    public var inputShape: [Int] { network.stages[stageIndices[0]].inputShape }

    /// Runs the hosted stages on `input` (1, inputShape…).
    public func run(_ input: Tensor) -> Outcome {
        let exits = network.stages.count
        var x = input
        var best: (Int, ExitOutput)? = nil
        for i in stageIndices {
            x = network.trunk(i, x)
            let out = network.classify(exit: i, features: x)[0]
            if policy.exits(at: i, of: exits, entropy: out.entropy) { return .exited(exit: i, out) }
            best = (i, out)
        }
        return .forward(features: x, nextStage: stageIndices.last! + 1, best: best!)
    }

    /// Runs the hosted stages on a batch of samples, each (1, inputShape…) or (inputShape…), and
    /// gives each sample's outcome, in order. The samples go through every stage together, as one
    /// tensor (n, …); those that leave at an exit drop out of the batch before the next stage.
    /// Each outcome is the one `run(_:)` gives for that sample alone (the kernels compute every
    /// sample of a batch independently), with forwarded features shaped (1, …).
    public func run(batch inputs: [Tensor]) -> [Outcome] {
        guard inputs.count > 1 else {
            return inputs.map { run(Tensor(shape: [1] + inputShape, data: $0.data)) }
        }
        let exits = network.stages.count
        let item = inputShape
        let width = item.reduce(1, *)
        var data = [Float]()
        data.reserveCapacity(width * inputs.count)
        for x in inputs {
            precondition(x.data.count == width, "a sample of \(x.shape) in a batch for input \(item)")
            data.append(contentsOf: x.data)
        }
        var x = Tensor(shape: [inputs.count] + item, data: data)
        var rows = Array(0..<inputs.count)  // which sample each row of x is
        var outcomes = [Outcome?](repeating: nil, count: inputs.count)
        var best = [(Int, ExitOutput)?](repeating: nil, count: inputs.count)
        for i in stageIndices {
            x = network.trunk(i, x)
            let outs = network.classify(exit: i, features: x)
            var keep: [Int] = []
            for (r, out) in outs.enumerated() {
                if policy.exits(at: i, of: exits, entropy: out.entropy) {
                    outcomes[rows[r]] = .exited(exit: i, out)
                } else {
                    best[rows[r]] = (i, out)
                    keep.append(r)
                }
            }
            if keep.count < rows.count {
                if keep.isEmpty { return outcomes.map { $0! } }
                x = Self.rows(keep, of: x)
                rows = keep.map { rows[$0] }
            }
        }
        let next = stageIndices.last! + 1
        let itemShape = Array(x.shape.dropFirst())
        let size = itemShape.reduce(1, *)
        for (r, sample) in rows.enumerated() {
            let features = Tensor(shape: [1] + itemShape, data: Array(x.data[(r * size)..<((r + 1) * size)]))
            outcomes[sample] = .forward(features: features, nextStage: next, best: best[sample]!)
        }
        return outcomes.map { $0! }
    }

    /// The rows `picked` of `x` (n, …), in that order.
    private static func rows(_ picked: [Int], of x: Tensor) -> Tensor {
        let size = x.shape.dropFirst().reduce(1, *)
        var data = [Float]()
        data.reserveCapacity(size * picked.count)
        for r in picked { data.append(contentsOf: x.data[(r * size)..<((r + 1) * size)]) }
        return Tensor(shape: [picked.count] + x.shape.dropFirst(), data: data)
    }
}
