import BranchyTensor
import CBranchyKernels

/// HardSwish activation (`hardswish`), no fields: y = x · relu6(x + 3) / 6, the activation of
/// MobileNetV3 (ONNX `HardSwish`); see ``HardSwish`` for the rounding and the edge values.
/// Trained with PyTorch's derivative. Forward and compiled inference run the C kernel
/// `bk_hardswish`.
final class HardSwishLayer: ActivationLayer, Operator {
    static let op = "hardswish"

    override func apply(_ x: Tensor) -> Tensor { HardSwish.forward(x) }

    override func gradient(input x: Tensor, dy: Tensor) -> Tensor { HardSwish.backward(input: x, dy: dy) }

    override func kernel(isa: KernelISA) -> ElementwiseStep.Kernel { { bk_hardswish(isa.rawValue, $0, $1, $2) } }
}

extension LayerSpec {
    /// A `hardswish` layer.
    public static let hardSwish = LayerSpec(op: "hardswish")
}
