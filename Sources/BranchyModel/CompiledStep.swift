/// One step of a compiled stage: a layer's inference form, with the layers it fuses.
///
/// A step runs either one sample at a time (``perSample``, ``runSample(_:_:workspace:)``) or
/// on a group of samples at once (``runGroup(_:_:_:_:_:)``); ``CompiledNetwork`` chains runs
/// of per-sample steps sample by sample. Running a step allocates nothing.
protocol CompiledStep: Sendable {
    /// Whether the step runs one sample at a time. True by default.
    var perSample: Bool { get }
    /// Floats of one sample's output.
    var outputCount: Int { get }
    /// One sample: x → y (outputCount floats). For per-sample steps.
    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace)
    /// n samples of `inCount` floats each: x → y (n × outputCount floats). For group steps.
    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun)
}

extension CompiledStep {
    var perSample: Bool { true }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        preconditionFailure("\(Self.self) is not a per-sample step")
    }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        preconditionFailure("\(Self.self) is not a group step")
    }
}

/// Where a group step runs: the network, the workspace and the level of residual nesting
/// (which selects the workspace buffers between steps).
struct GroupRun {
    let network: CompiledNetwork
    let workspace: InferenceWorkspace
    let level: Int

    /// Runs `steps` one level deeper on n samples: x (n × inCount) → y (n × the last step's output).
    func nested(_ steps: [any CompiledStep], _ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>) {
        network.runSteps(steps, n, x, inCount, y, workspace, level: level + 1)
    }

    /// This level's buffer for a residual block's shortcut (a group's worth of activations).
    var shortcutBuffer: UnsafeMutablePointer<Float> { network.buffer(workspace, level: level, 4) }
}

/// A per-sample step that maps the `outputCount` values of a sample one by one (an activation).
struct ElementwiseStep: CompiledStep {
    /// Maps `count` floats from x to y.
    typealias Kernel = @Sendable (_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) -> Void

    let outputCount: Int
    let kernel: Kernel

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        kernel(outputCount, x, y)
    }
}
