import BranchyTensor
import CBranchyKernels

/// Sign activation (`sign`), no fields: y = +1 where x ≥ 0 (so 0 maps to +1), else −1; trained
/// straight-through, clipped at abs(x) ≤ 1 (see ``Sign``). Compiled: `bk_sign`.
final class SignLayer: ActivationLayer, Operator {
    static let op = "sign"

    override func apply(_ x: Tensor) -> Tensor { Sign.forward(x) }

    override func gradient(input x: Tensor, dy: Tensor) -> Tensor { Sign.backward(input: x, dy: dy) }

    override func kernel(isa: KernelISA) -> ElementwiseStep.Kernel { { bk_sign($0, $1, $2) } }
}

extension LayerSpec {
    /// A `sign` layer.
    public static let sign = LayerSpec(op: "sign")
}
