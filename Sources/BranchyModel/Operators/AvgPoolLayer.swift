import BranchyTensor

/// Average pooling (`avgpool`): `kernel`, `stride` (= kernel), `pad` (0), `ceil` (false); see
/// ``PoolLayer``. Each window averages the input values it covers (padding
/// not counted).
final class AvgPoolLayer: PoolLayer, Operator {
    static let op = "avgpool"

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedShape = x.shape }
        return AvgPool2D.forward(geometry, x: x)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        AvgPool2D.backward(geometry, inputShape: cachedShape, dy: dy)
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        (AvgPoolStep(geometry: geometry), 0)
    }
}

/// Per sample: average pooling.
struct AvgPoolStep: CompiledStep {
    let geometry: Pool2DGeometry

    var outputCount: Int { geometry.outputCount }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        AvgPool2D.forward(geometry, planes: geometry.channels, x, y)
    }
}

extension LayerSpec {
    /// An `avgpool` layer.
    public static func avgPool(_ kernel: Int, stride: Int? = nil) -> LayerSpec {
        LayerSpec(op: "avgpool", kernel: kernel, stride: stride)
    }
}
