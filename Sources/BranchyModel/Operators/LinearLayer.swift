import BranchyTensor

/// Fully connected layer (`linear`): `name`, `out`, `bias` (true); see ``DenseLayer``.
/// y = x · Wᵀ + b. Compiled inference packs Wᵀ once and fuses a `relu` that follows it.
final class LinearLayer: DenseLayer, Operator {
    static let op = "linear"

    override func apply(_ x: Tensor) -> Tensor { Linear.forward(x: x, weight: weight.value, bias: bias?.value) }

    override func gradient(input x: Tensor, dy: Tensor, dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool) -> Tensor? {
        Linear.backward(x: x, weight: weight.value, dy: dy, dWeight: &dWeight, dBias: &dBias, needInputGradient: needInputGradient)
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let relu = following.first is ReLULayer
        let step = LinearStep(weight: weight.value, bias: bias?.value, relu: relu, isa: compiler.isa)
        compiler.maxLinearScratch = max(compiler.maxLinearScratch, step.scratchFloats)
        return (step, relu ? 1 : 0)
    }
}

extension LayerSpec {
    /// A `linear` layer with a bias.
    public static func linear(_ name: String, out: Int) -> LayerSpec { LayerSpec(op: "linear", name: name, out: out) }
}
