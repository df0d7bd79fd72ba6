import BranchyModel
import BranchyTensor

/// Runs the stages a node hosts on one sample and applies the early-exit rule after each.
public struct StageRunner: Sendable {
    /// What running the hosted stages gave.
    public enum Outcome: Sendable {
        /// An exit here was sure enough (or it was the model's last exit); `passed` are the
        /// entropies of the exits computed here before it, in order.
        case exited(exit: Int, ExitOutput, passed: [Float])
        /// Not sure: `features` must go to stage `nextStage` upstream. `best` is the last exit
        /// computed here, the answer to give if upstream cannot; `passed` the entropies of every
        /// exit computed here, in order (the last is `best`'s).
        case forward(features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput), passed: [Float])
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
        workspaces = WorkspacePool(network: CompiledNetwork(context.model.network, stages: Set(context.stageIndices), int8: context.int8))
    }

    /// Shape of one input item of the first hosted stage.
    public var inputShape: [Int] { network.stages[stageIndices[0]].inputShape }

    /// Runs the hosted stages on `input` (1, inputShape…). With `probabilities`, the exit outputs
    /// (the answering one, or `best`) carry every class's probability. `policy` replaces the node's
    /// thresholds for this sample (a request's own, ``InferRequest/exitThresholds``).
    public func run(_ input: Tensor, probabilities: Bool = false, policy: ExitPolicy? = nil) -> Outcome {
        let policy = policy ?? self.policy
        let exits = network.stages.count
        let compiled = workspaces.network
        var x = input.data
        var best: (Int, ExitOutput)? = nil
        var passed: [Float] = []
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
                    let out = ExitOutput.summarize(logits.baseAddress!, classes: compiled.classes, withProbabilities: probabilities)
                    x = features
                    if policy.exits(at: i, of: exits, entropy: out.entropy) { return .exited(exit: i, out, passed: passed) }
                    best = (i, out)
                    passed.append(out.entropy)
                }
                return .forward(features: Tensor(shape: [1] + compiled.stages[stageIndices.last!].featureShape, data: x),
                                nextStage: stageIndices.last! + 1, best: best!, passed: passed)
            }
        }
    }

    /// Runs the hosted stages on a batch of samples, each (1, inputShape…) or (inputShape…), and
    /// gives each sample's outcome, in order. The samples go through every stage together, as one
    /// tensor (n, …); those that leave at an exit drop out of the batch before the next stage.
    /// Each outcome is the one `run(_:)` gives for that sample alone (the kernels compute every
    /// sample of a batch independently), with forwarded features shaped (1, …). `probabilities[k]`
    /// (when given) says whether sample k's exit outputs carry every class's probability, and
    /// `policies[k]` (when given) the thresholds sample k leaves by, if not the node's.
    public func run(batch inputs: [Tensor], probabilities: [Bool] = [], policies: [ExitPolicy?] = []) -> [Outcome] {
        precondition(probabilities.isEmpty || probabilities.count == inputs.count, "one probabilities flag per sample")
        precondition(policies.isEmpty || policies.count == inputs.count, "one policy per sample")
        guard inputs.count > 1 else {
            return inputs.map { run(Tensor(shape: [1] + inputShape, data: $0.data), probabilities: probabilities.first ?? false,
                                    policy: policies.first ?? nil) }
        }
        let exits = network.stages.count
        let compiled = workspaces.network
        let classes = compiled.classes
        let width = inputShape.reduce(1, *)
        var x = [Float]()
        x.reserveCapacity(width * inputs.count)
        for input in inputs {
            precondition(input.data.count == width, "a sample of \(input.shape) in a batch for input \(inputShape)")
            x.append(contentsOf: input.data)
        }
        var rows = Array(0..<inputs.count)  // which sample each row of x is
        var outcomes = [Outcome?](repeating: nil, count: inputs.count)
        var best = [(Int, ExitOutput)?](repeating: nil, count: inputs.count)
        var passed = [[Float]](repeating: [], count: inputs.count)
        var logits = [Float](repeating: 0, count: inputs.count * classes)
        return workspaces.withWorkspace { ws in
            for i in stageIndices {
                let size = compiled.stages[i].featureCount
                var features = [Float](repeating: 0, count: rows.count * size)
                var keep: [Int] = []
                x.withUnsafeBufferPointer { xp in
                    features.withUnsafeMutableBufferPointer { fp in
                        logits.withUnsafeMutableBufferPointer { lp in
                            compiled.run(stage: i, count: rows.count, input: xp.baseAddress!, features: fp.baseAddress!,
                                         logits: lp.baseAddress!, workspace: ws)
                            for r in 0..<rows.count {
                                let out = ExitOutput.summarize(lp.baseAddress! + r * classes, classes: classes,
                                                               withProbabilities: !probabilities.isEmpty && probabilities[rows[r]])
                                let rule = policies.isEmpty ? policy : policies[rows[r]] ?? policy
                                if rule.exits(at: i, of: exits, entropy: out.entropy) {
                                    outcomes[rows[r]] = .exited(exit: i, out, passed: passed[rows[r]])
                                } else {
                                    best[rows[r]] = (i, out)
                                    passed[rows[r]].append(out.entropy)
                                    keep.append(r)
                                }
                            }
                        }
                    }
                }
                if keep.isEmpty { return outcomes.map { $0! } }
                if keep.count < rows.count {
                    features = Self.rows(keep, of: features, size: size)
                    rows = keep.map { rows[$0] }
                }
                x = features
            }
            let next = stageIndices.last! + 1
            let shape = compiled.stages[stageIndices.last!].featureShape
            let size = shape.reduce(1, *)
            for (r, sample) in rows.enumerated() {
                let features = Tensor(shape: [1] + shape, data: Array(x[(r * size)..<((r + 1) * size)]))
                outcomes[sample] = .forward(features: features, nextStage: next, best: best[sample]!, passed: passed[sample])
            }
            return outcomes.map { $0! }
        }
    }

    /// The rows `picked` (of `size` floats each) of `x`, in that order.
    private static func rows(_ picked: [Int], of x: [Float], size: Int) -> [Float] {
        var data = [Float]()
        data.reserveCapacity(size * picked.count)
        for r in picked { data.append(contentsOf: x[(r * size)..<((r + 1) * size)]) }
        return data
    }
}
