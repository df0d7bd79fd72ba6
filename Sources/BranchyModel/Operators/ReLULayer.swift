import BranchyTensor

/// Rectified linear unit (`relu`): y = max(x, 0), no fields. Compiled inference fuses it into
/// the `conv`, `linear`, `maxpool` or `residual` block before it.
final class ReLULayer: Layer, Operator {
    static let op = "relu"

    private var cachedOutput: Tensor?

    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: inputShape) }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        c.sameShape { ReLULayer(inputShape: $0) }
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = ReLU.forward(x)
        if training { cachedOutput = y }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        ReLU.backward(output: cachedOutput!, dy: dy)
    }

    override func clearCache() { cachedOutput = nil }

    /// A ReLU on its own (one that no layer before it fused).
    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let step = ElementwiseStep(outputCount: outputShape.reduce(1, *)) { count, x, y in
            for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
        }
        return (step, 0)
    }
}

extension LayerSpec {
    /// A `relu` layer.
    public static let relu = LayerSpec(op: "relu")
}
