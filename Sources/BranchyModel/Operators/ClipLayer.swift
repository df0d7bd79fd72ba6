import BranchyTensor
import CBranchyKernels

/// Clipping (`clip`): `min` and `max` (no bound when absent), y = min(max(x, min), max), the
/// form ONNX's `Clip` takes (ReLU6: min 0, max 6). `min` and `max` belong to `clip` alone.
/// NaN stays NaN, as in ONNX Runtime.
final class ClipLayer: ScalarActivationLayer, Operator {
    static let op = "clip"
    static let exclusiveKeys = ["min", "max"]

    var low: Float = -.infinity, high: Float = .infinity

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let low = c.spec.min ?? -.infinity, high = c.spec.max ?? .infinity
        guard !low.isNaN, !high.isNaN, low <= high else {
            throw c.fail(at: "min", "'min' \(low) must be at most 'max' \(high)")
        }
        return c.sameShape { shape in
            let layer = ClipLayer(inputShape: shape)
            layer.low = low; layer.high = high
            return layer
        }
    }

    override var scalarKernel: @Sendable (Float) -> Float {
        let low = self.low, high = self.high
        return { x in x.isNaN ? x : Swift.min(Swift.max(x, low), high) }
    }

    override func value(_ x: Float) -> Float { x.isNaN ? x : Swift.min(Swift.max(x, low), high) }

    /// The compiled form: `bk_clip` over the sample (vectorized, the bits of ``value(_:)``).
    override func kernel(isa: KernelISA) -> ElementwiseStep.Kernel {
        let low = self.low, high = self.high, isa = isa.rawValue
        return { count, x, y in bk_clip(isa, count, x, y, low, high) }
    }
    override func derivative(_ x: Float) -> Float { x >= low && x <= high ? 1 : 0 }
}

extension LayerSpec {
    /// A `clip` layer (ReLU6: `clip(min: 0, max: 6)`).
    public static func clip(min: Float?, max: Float?) -> LayerSpec { LayerSpec(op: "clip", min: min, max: max) }
}
