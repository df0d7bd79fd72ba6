import BranchyTensor

/// Leaky ReLU (`leakyrelu`): `alpha` (0.01), y = x for x ≥ 0, alpha · x below (ONNX `LeakyRelu`).
final class LeakyReLULayer: ScalarActivationLayer, Operator {
    static let op = "leakyrelu"

    var alpha: Float = 0.01

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let alpha = c.spec.alpha ?? 0.01
        guard alpha.isFinite else { throw c.fail(at: "alpha", "must be finite, got \(alpha)") }
        return c.sameShape { shape in
            let layer = LeakyReLULayer(inputShape: shape)
            layer.alpha = alpha
            return layer
        }
    }

    override var scalarKernel: @Sendable (Float) -> Float {
        let alpha = self.alpha
        return { x in x >= 0 ? x : alpha * x }
    }

    override func value(_ x: Float) -> Float { x >= 0 ? x : alpha * x }
    override func derivative(_ x: Float) -> Float { x >= 0 ? 1 : alpha }
}
