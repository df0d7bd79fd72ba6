import BranchyTensor
import CBranchyKernels

/// Max pooling (`maxpool`): `kernel`, `stride` (= kernel), `pad` (0), `ceil` (false); see
/// ``PoolLayer``. Windows are clipped to the input, so padding never wins.
/// Compiled inference fuses a `relu` that follows it.
final class MaxPoolLayer: PoolLayer, Operator {
    static let op = "maxpool"

    private var argmax: [Int32] = []

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training {
            cachedShape = x.shape
            return MaxPool2D.forward(geometry, x: x, argmax: &argmax)
        }
        var scratch: [Int32] = []
        return MaxPool2D.forward(geometry, x: x, argmax: &scratch)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        MaxPool2D.backward(inputShape: cachedShape, dy: dy, argmax: argmax)
    }

    override func clearCache() { argmax = [] }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let relu = following.first is ReLULayer
        return (MaxPoolStep(geometry: geometry, relu: relu, isa: compiler.isa), relu ? 1 : 0)
    }
}

/// Per sample: max pooling (and ReLU) not preceded by a convolution (`bk_maxpool`).
struct MaxPoolStep: CompiledStep {
    let geometry: Pool2DGeometry
    let relu: Bool
    let isa: KernelISA

    var outputCount: Int { geometry.outputCount }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        let p = geometry
        bk_maxpool(isa.rawValue, Int32(p.channels), Int32(p.inH), Int32(p.inW), x, p.inH * p.inW, p.inW,
                   Int32(p.kernel), Int32(p.stride), Int32(p.pad), Int32(p.outH), Int32(p.outW),
                   y, p.outH * p.outW, p.outW, relu ? 1 : 0)
    }
}

extension LayerSpec {
    /// A `maxpool` layer.
    public static func maxPool(_ kernel: Int = 2, stride: Int? = nil, ceil: Bool = false) -> LayerSpec {
        LayerSpec(op: "maxpool", kernel: kernel, stride: stride, ceil: ceil ? true : nil)
    }
}
