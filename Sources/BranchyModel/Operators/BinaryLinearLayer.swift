import BranchyTensor

/// XNOR-Net binary fully connected layer (`binlinear`) over latent float weights (see
/// ``BinaryLinear``): `name`, `out`, `bias` (true), as for ``DenseLayer``;
/// y[o] = α[o] · dot(sign(x), sign(W[o])) + b[o] with α[o] = mean abs(W[o]). Every forward pass
/// binarises the current weights and recomputes α, so training sees each update. Compiled:
/// weight signs packed to bits once, XOR and popcount (``BinaryLinearStep``).
final class BinaryLinearLayer: DenseLayer, Operator {
    static let op = "binlinear"

    override func apply(_ x: Tensor) -> Tensor {
        BinaryLinear.forward(x: x.reshaped([x.batch, x.itemCount]), weight: weight.value, bias: bias?.value)
    }

    override func gradient(input x: Tensor, dy: Tensor, dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool) -> Tensor? {
        BinaryLinear.backward(x: x, weight: weight.value, dy: dy, dWeight: &dWeight, dBias: &dBias, needInputGradient: needInputGradient)
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let step = BinaryLinearStep(weight: weight.value, bias: bias?.value, isa: compiler.isa)
        compiler.maxLinearScratch = max(compiler.maxLinearScratch, step.scratchFloats(compiler.isa.mr))
        return (step, 0)
    }
}

extension LayerSpec {
    /// A `binlinear` layer with a bias.
    public static func binaryLinear(_ name: String, out: Int) -> LayerSpec { LayerSpec(op: "binlinear", name: name, out: out) }
}
