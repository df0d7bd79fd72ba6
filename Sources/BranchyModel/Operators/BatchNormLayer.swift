import BranchyTensor

/// Batch normalisation (`batchnorm`): `name`, `epsilon` (1e-5), `momentum` (none: trained with
/// the running statistics as constants; else with batch statistics, updating the running
/// ones). Input (C, H, W) or (C); γ (`.weight`), β (`.bias`) and the running statistics
/// (`.running_mean`, `.running_var`, state tensors of the weights file) per channel. Compiled
/// inference folds one that directly follows a `conv` into its weights and bias; any other
/// runs as a per-channel affine step.
final class BatchNormLayer: Layer, Operator {
    static let op = "batchnorm"

    let gamma: Parameter, beta: Parameter
    /// Running statistics, stored in the weights file. Without a momentum they are constants
    /// here; with one, training forward passes update them.
    var mean: Tensor, variance: Tensor
    let epsilon: Float
    /// nil: training normalises with the running statistics (inference form). Otherwise training
    /// normalises with each batch's statistics and moves the running ones towards them:
    /// r ← (1 − momentum) · r + momentum · batch value (the variance unbiased, as PyTorch does).
    let momentum: Float?
    private var cachedInput: Tensor?
    private var cachedBatch: (normalized: Tensor, variance: [Float])?
    let statisticNames: (mean: String, variance: String)

    init(prefix: String, inputShape: [Int], epsilon: Float, momentum: Float? = nil) {
        let c = inputShape[0]
        gamma = Parameter(name: prefix + ".weight", value: Tensor(shape: [c], repeating: 1))
        beta = Parameter(name: prefix + ".bias", value: Tensor(shape: [c]))
        mean = Tensor(shape: [c]); variance = Tensor(shape: [c], repeating: 1)
        statisticNames = (prefix + ".running_mean", prefix + ".running_var")
        self.epsilon = epsilon
        self.momentum = momentum
        super.init(inputShape: inputShape, outputShape: inputShape)
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let shape = c.input
        guard shape.count == 3 || shape.count == 1 else { throw c.fail("'batchnorm' needs (C, H, W) or (C) input, got \(shape)") }
        let name = try c.name()
        // γ, β, running mean and running variance, one per channel.
        try c.count([[shape[0]], [shape[0]], [shape[0]], [shape[0]]])
        let momentum = c.spec.momentum, epsilon = c.spec.epsilon ?? 1e-5
        if let m = momentum, !(m > 0 && m <= 1) { throw c.fail(at: "momentum", "must lie in (0, 1], got \(m)") }
        return LayerPlan(shape) { BatchNormLayer(prefix: name, inputShape: shape, epsilon: epsilon, momentum: momentum) }
    }

    override var parameters: [Parameter] { [gamma, beta] }

    override var stateTensors: [(name: String, value: Tensor)] {
        [(statisticNames.mean, mean), (statisticNames.variance, variance)]
    }

    override func assignState(_ name: String, _ value: Tensor) -> Bool {
        if name == statisticNames.mean { mean = value; return true }
        if name == statisticNames.variance { variance = value; return true }
        return false
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training, let momentum {
            let r = BatchNorm.forwardTraining(x: x, gamma: gamma.value, beta: beta.value, epsilon: epsilon)
            cachedBatch = (r.normalized, r.variance)
            let m = Float(x.count / gamma.value.count)
            for c in 0..<mean.count {
                mean.data[c] += momentum * (r.mean[c] - mean.data[c])
                let unbiased = m > 1 ? r.variance[c] * m / (m - 1) : r.variance[c]
                variance.data[c] += momentum * (unbiased - variance.data[c])
            }
            return r.y
        }
        if training { cachedInput = x }
        return BatchNorm.forward(x: x, mean: mean, variance: variance, gamma: gamma.value, beta: beta.value, epsilon: epsilon)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        if let batch = cachedBatch {
            return BatchNorm.backwardTraining(normalized: batch.normalized, dy: dy, variance: batch.variance, gamma: gamma.value,
                                              epsilon: epsilon, dGamma: &gamma.grad, dBeta: &beta.grad)
        }
        return BatchNorm.backward(x: cachedInput!, dy: dy, mean: mean, variance: variance, gamma: gamma.value, epsilon: epsilon,
                                  dGamma: &gamma.grad, dBeta: &beta.grad)
    }

    override func clearCache() { cachedInput = nil; cachedBatch = nil }

    /// The inference form y = x · scale[c] + shift[c], per channel.
    var affine: (scale: [Float], shift: [Float]) {
        BatchNorm.affine(mean: mean, variance: variance, gamma: gamma.value, beta: beta.value, epsilon: epsilon)
    }

    /// A convolution's weight and bias with this batch norm folded in: per output channel,
    /// w · scale and b · scale + shift (b = 0 without a bias).
    func fold(into weight: Tensor, _ bias: Tensor?) -> (weight: Tensor, bias: Tensor) {
        let (scale, shift) = affine
        var w = weight, b = Tensor(shape: [scale.count])
        let per = weight.count / scale.count
        for o in 0..<scale.count {
            for k in (o * per)..<((o + 1) * per) { w.data[k] *= scale[o] }
            b.data[o] = (bias?.data[o] ?? 0) * scale[o] + shift[o]
        }
        return (w, b)
    }

    /// A batch norm not folded into a convolution: a per-sample affine step.
    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let (scale, shift) = affine
        return (AffineStep(scale: scale, shift: shift, plane: outputShape.dropFirst().reduce(1, *)), 0)
    }
}

/// Per sample: batch normalisation in inference form, y = x · scale[c] + shift[c] over planes of `plane` values.
struct AffineStep: CompiledStep {
    let scale: [Float]
    let shift: [Float]
    let plane: Int

    var outputCount: Int { scale.count * plane }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        for c in 0..<scale.count {
            let sc = scale[c], sh = shift[c], o = c * plane
            for i in o..<(o + plane) { y[i] = x[i] * sc + sh }
        }
    }
}

extension LayerSpec {
    /// A `batchnorm` layer with the default epsilon.
    public static func batchNorm(_ name: String, momentum: Float? = nil) -> LayerSpec {
        LayerSpec(op: "batchnorm", name: name, momentum: momentum)
    }
}
