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
}
