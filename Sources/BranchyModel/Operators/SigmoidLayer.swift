import BranchyTensor
import Foundation

/// The logistic function (`sigmoid`), no fields: y = 1 / (1 + e^−x) (ONNX `Sigmoid`).
final class SigmoidLayer: ScalarActivationLayer, Operator {
    static let op = "sigmoid"

    override var scalarKernel: @Sendable (Float) -> Float { Self.logistic }

    /// 1 / (1 + e^−x), computed from e^−|x| so that it neither overflows nor loses the small side.
    @Sendable static func logistic(_ x: Float) -> Float {
        let e = Foundation.exp(-Swift.abs(x))
        return x >= 0 ? 1 / (1 + e) : e / (1 + e)
    }

    override func value(_ x: Float) -> Float { Self.logistic(x) }
    override func derivative(_ x: Float) -> Float { let s = Self.logistic(x); return s * (1 - s) }
}

/// The piecewise-linear sigmoid (`hardsigmoid`): `alpha` (0.2), `beta` (0.5);
/// y = max(0, min(1, alpha · x + beta)) (ONNX `HardSigmoid`; PyTorch's is alpha 1/6, beta 0.5).
final class HardSigmoidLayer: ScalarActivationLayer, Operator {
    static let op = "hardsigmoid"

    var alpha: Float = 0.2, beta: Float = 0.5

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let alpha = c.spec.alpha ?? 0.2, beta = c.spec.beta ?? 0.5
        guard alpha.isFinite, beta.isFinite else { throw c.fail(at: "alpha", "'alpha' and 'beta' must be finite") }
        return c.sameShape { shape in
            let layer = HardSigmoidLayer(inputShape: shape)
            layer.alpha = alpha; layer.beta = beta
            return layer
        }
    }

    override var scalarKernel: @Sendable (Float) -> Float {
        let alpha = self.alpha, beta = self.beta
        return { x in Swift.max(0, Swift.min(1, alpha * x + beta)) }
    }

    override func value(_ x: Float) -> Float { scalarKernel(x) }
    override func derivative(_ x: Float) -> Float { let t = alpha * x + beta; return t > 0 && t < 1 ? alpha : 0 }
}
