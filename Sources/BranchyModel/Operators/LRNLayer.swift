import BranchyTensor

/// Local response normalisation across channels (`lrn`, see ``LocalResponseNorm``): `size` (5,
/// odd), `alpha` (1e-4), `beta` (0.75), `k` (2); y = x / (k + alpha · Σ x²)^beta over the `size`
/// channels centred on each (Chainer's and Caffe's form, alpha not divided by size). `size` and
/// `k` belong to `lrn` alone (`alpha` and `beta` are shared with `leakyrelu` and `hardsigmoid`). Input (C, H, W).
final class LRNLayer: Layer, Operator {
    static let op = "lrn"
    static let exclusiveKeys = ["size", "k"]

    let norm: LocalResponseNorm
    private var cached: (x: Tensor, y: Tensor, scale: Tensor)?

    init(inputShape: [Int], size: Int, alpha: Float, beta: Float, k: Float) {
        norm = LocalResponseNorm(channels: inputShape[0], plane: inputShape.dropFirst().reduce(1, *), size: size,
                                 alpha: alpha, beta: beta, k: k)
        super.init(inputShape: inputShape, outputShape: inputShape)
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        _ = try c.image()
        let l = c.spec
        let n = try c.need(l.size ?? 5, "size")
        guard n % 2 == 1 else { throw c.fail(at: "size", "the window must be odd (centred on each channel), got \(n)") }
        let alpha = l.alpha ?? 1e-4, beta = l.beta ?? 0.75, k = l.k ?? 2
        guard alpha >= 0 else { throw c.fail(at: "alpha", "must be >= 0, got \(alpha)") }
        guard beta >= 0 else { throw c.fail(at: "beta", "must be >= 0, got \(beta)") }
        guard k > 0 else { throw c.fail(at: "k", "must be > 0, got \(k)") }
        return c.sameShape { LRNLayer(inputShape: $0, size: n, alpha: alpha, beta: beta, k: k) }
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let (y, scale) = norm.forward(x)
        if training { cached = (x, y, scale) }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let c = cached!
        return norm.backward(x: c.x, y: c.y, scale: c.scale, dy: dy)
    }

    override func clearCache() { cached = nil }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        (LRNStep(norm: norm), 0)
    }
}

/// Per sample: local response normalisation.
struct LRNStep: CompiledStep {
    let norm: LocalResponseNorm

    var outputCount: Int { norm.count }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        norm.forward(x, y, scale: nil)
    }
}

extension LayerSpec {
    /// An `lrn` layer.
    public static func lrn(size: Int, alpha: Float, beta: Float, k: Float) -> LayerSpec {
        LayerSpec(op: "lrn", size: size, alpha: alpha, beta: beta, k: k)
    }
}
