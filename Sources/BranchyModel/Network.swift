import BranchyTensor

/// A built early-exit network: for each stage, trunk layers and exit layers with their shapes.
///
/// A network is written in place in two ways only: by whoever builds or loads it (``assign(_:_:)``,
/// ``initialize(seed:)``) and by training (training forward passes cache inputs in the layers;
/// backward passes and the optimiser write gradients and parameters). Both happen while one
/// owner holds the network exclusively: `Model.load` fills it before returning it, and the
/// trainer (`Trainer`, `jointLossGradients`) runs on the network it was given, on one thread.
/// A network shared between threads — a loaded model served by the tiers, or one evaluated on
/// several tasks — is only read: inference passes (`trunk`, `exitLogits`, `classify` with
/// `training: false`) read parameters and statistics and write nothing in the network.
// That discipline, not the compiler, is what makes sharing it safe: its layers and parameters
// are classes with mutable state, so the conformance has to be unchecked.
public final class Network: @unchecked Sendable {
    /// One stage at run time. Not `Sendable` on its own: its layers are shared only as part of
    /// the network.
    public struct Stage {
        public let name: String
        public let exitName: String
        public let trunk: [Layer]
        public let exit: [Layer]
        /// Shape of one input item of this stage's trunk.
        public let inputShape: [Int]
        /// Shape of one output item of this stage's trunk (the features the next stage receives).
        public let outputShape: [Int]
    }

    public let spec: ModelSpec
    public let stages: [Stage]

    /// Builds the layers described by `spec`, inferring every shape; `file` names the source in errors.
    ///
    /// The whole description is checked first, every size against ``ModelLimits``; nothing is
    /// allocated for a description that fails.
    public init(spec: ModelSpec, file: String = "model.json") throws {
        let plan = try NetworkPlan(spec: spec, file: file)
        self.spec = spec
        self.stages = plan.stages.map { s in
            Stage(name: s.name, exitName: s.exitName, trunk: s.trunk.map { $0.make() }, exit: s.exit.map { $0.make() },
                  inputShape: s.inputShape, outputShape: s.outputShape)
        }
    }

    /// Every trainable parameter, stage by stage, trunk before exit.
    public var parameters: [Parameter] {
        stages.flatMap { s in (s.trunk + s.exit).flatMap(\.parameters) }
    }

    /// Every tensor of the weights file that is not trained (batch-norm statistics), stage by
    /// stage, trunk before exit, each layer's before its sublayers'.
    var stateTensors: [(name: String, value: Tensor)] {
        stages.flatMap { s in (s.trunk + s.exit).flattened.flatMap(\.stateTensors) }
    }

    /// Every tensor the weights file must hold, name → expected shape (parameters and batch-norm statistics).
    public var expectedTensors: [(name: String, shape: [Int])] {
        parameters.map { ($0.name, $0.value.shape) } + stateTensors.map { ($0.name, $0.value.shape) }
    }

    /// All tensors by name, for saving.
    public var namedTensors: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in parameters { out[p.name] = p.value }
        for t in stateTensors { out[t.name] = t.value }
        return out
    }

    /// Sets a tensor by name; returns false when no such tensor exists.
    @discardableResult
    public func assign(_ name: String, _ value: Tensor) -> Bool {
        if let p = parameters.first(where: { $0.name == name }) { p.value = value; return true }
        return stages.contains { s in (s.trunk + s.exit).flattened.contains { $0.assignState(name, value) } }
    }

    /// He-uniform initialisation of weights (bound √(6 / fan-in)), zero biases.
    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for p in parameters {
            if p.name.hasSuffix(".bias") { continue }
            if p.value.rank < 2 { continue }
            let fanIn = p.value.itemCount
            let bound = (6 / Float(fanIn)).squareRoot()
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-bound, bound) }
        }
    }

    /// Runs stage `index`'s trunk: x (N, inputShape…) → features (N, outputShape…).
    public func trunk(_ index: Int, _ x: Tensor, training: Bool = false) -> Tensor {
        stages[index].trunk.reduce(x) { $1.forward($0, training: training) }
    }

    /// Runs stage `index`'s exit branch on trunk features → logits (N, classes).
    public func exitLogits(_ index: Int, _ features: Tensor, training: Bool = false) -> Tensor {
        stages[index].exit.reduce(features) { $1.forward($0, training: training) }
    }
}
