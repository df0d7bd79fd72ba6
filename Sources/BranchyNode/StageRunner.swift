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
    /// The hosted stages compiled for the machine's kernel path, with workspaces for the
    /// threads that run them.
    public let workspaces: WorkspacePool

    public init(context: NodeContext) {
        network = context.model.network
        stageIndices = context.stageIndices
        policy = context.policy
        workspaces = WorkspacePool(network: CompiledNetwork(context.model.network))
    }

    /// Shape of one input item of the first hosted stage.
    public var inputShape: [Int] { network.stages[stageIndices[0]].inputShape }

    /// Runs the hosted stages on `input` (1, inputShape…).
    public func run(_ input: Tensor) -> Outcome {
        let exits = network.stages.count
        let compiled = workspaces.network
        var x = input.data
        var best: (Int, ExitOutput)? = nil
        return workspaces.withWorkspace { ws in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: compiled.classes) { logits in
                for i in stageIndices {
                    var features = [Float](repeating: 0, count: compiled.stages[i].featureCount)
                    x.withUnsafeBufferPointer { xp in
                        features.withUnsafeMutableBufferPointer { fp in
                            compiled.run(stage: i, count: 1, input: xp.baseAddress!, features: fp.baseAddress!,
                                         logits: logits.baseAddress!, workspace: ws)
                        }
                    }
                    let out = ExitOutput.summarize(logits.baseAddress!, classes: compiled.classes)
                    x = features
                    if policy.exits(at: i, of: exits, entropy: out.entropy) { return .exited(exit: i, out) }
                    best = (i, out)
                }
                return .forward(features: Tensor(shape: [1] + compiled.stages[stageIndices.last!].featureShape, data: x),
                                nextStage: stageIndices.last! + 1, best: best!)
            }
        }
    }
}
