import BranchyTensor

/// A layer of the network with a forward pass, a backward pass and its parameters.
///
/// `forward(_:training:)` with `training: false` reads no mutable state and may run on
/// several threads at once; with `training: true` it keeps what `backward` needs.
///
/// Not `Sendable`: training writes the caches and the parameters. Layers are shared between
/// threads only as part of a ``Network``, on the terms stated there.
public class Layer {
    /// Shape of one input item, e.g. `[C, H, W]`.
    public let inputShape: [Int]
    /// Shape of one output item.
    public let outputShape: [Int]

    init(inputShape: [Int], outputShape: [Int]) {
        self.inputShape = inputShape
        self.outputShape = outputShape
    }

    /// Trainable parameters, in a fixed order.
    public var parameters: [Parameter] { [] }

    /// x: (N, inputShape…) → y: (N, outputShape…).
    public func forward(_ x: Tensor, training: Bool) -> Tensor { fatalError("abstract") }

    /// dy: (N, outputShape…) → dx, accumulating parameter gradients. Needs a preceding training forward.
    public func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? { fatalError("abstract") }

    /// Drops what the last training forward kept.
    public func clearCache() {}

    /// The layers inside this one (a residual block's body and shortcut), in order.
    public var sublayers: [Layer] { [] }
}

extension Sequence where Element == Layer {
    /// These layers and every layer nested in them, depth first, each before its sublayers.
    var flattened: [Layer] { flatMap { [$0] + $0.sublayers.flattened } }
}

final class ConvLayer: Layer {
    let geometry: Conv2DGeometry
    let weight: Parameter
    let bias: Parameter?
    private var cachedInput: Tensor?

    init(prefix: String, geometry g: Conv2DGeometry, hasBias: Bool) {
        geometry = g
        weight = Parameter(name: prefix + ".weight", value: Tensor(shape: [g.outC, g.inC, g.kH, g.kW]))
        bias = hasBias ? Parameter(name: prefix + ".bias", value: Tensor(shape: [g.outC])) : nil
        super.init(inputShape: [g.inC, g.inH, g.inW], outputShape: [g.outC, g.outH, g.outW])
    }

    override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return Conv2D.forward(geometry, x: x, weight: weight.value, bias: bias?.value)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = Conv2D.backward(geometry, x: cachedInput!, weight: weight.value, dy: dy,
                                 dWeight: &weight.grad, dBias: &db, needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx
    }

    override func clearCache() { cachedInput = nil }
}

final class LinearLayer: Layer {
    let weight: Parameter
    let bias: Parameter?
    private var cachedInput: Tensor?

    init(prefix: String, inputShape: [Int], out: Int, hasBias: Bool) {
        let inF = inputShape.reduce(1, *)
        weight = Parameter(name: prefix + ".weight", value: Tensor(shape: [out, inF]))
        bias = hasBias ? Parameter(name: prefix + ".bias", value: Tensor(shape: [out])) : nil
        super.init(inputShape: inputShape, outputShape: [out])
    }

    override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return Linear.forward(x: x, weight: weight.value, bias: bias?.value)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = Linear.backward(x: cachedInput!, weight: weight.value, dy: dy, dWeight: &weight.grad, dBias: &db,
                                 needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx.map { $0.reshaped(cachedInput!.shape) }
    }

    override func clearCache() { cachedInput = nil }
}

final class MaxPoolLayer: Layer {
    let geometry: Pool2DGeometry
    private var argmax: [Int32] = []
    private var cachedShape: [Int] = []

    init(geometry g: Pool2DGeometry) {
        geometry = g
        super.init(inputShape: [g.channels, g.inH, g.inW], outputShape: [g.channels, g.outH, g.outW])
    }

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
}

final class AvgPoolLayer: Layer {
    let geometry: Pool2DGeometry
    private var cachedShape: [Int] = []

    init(geometry g: Pool2DGeometry) {
        geometry = g
        super.init(inputShape: [g.channels, g.inH, g.inW], outputShape: [g.channels, g.outH, g.outW])
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedShape = x.shape }
        return AvgPool2D.forward(geometry, x: x)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        AvgPool2D.backward(geometry, inputShape: cachedShape, dy: dy)
    }
}

final class ReLULayer: Layer {
    private var cachedOutput: Tensor?

    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: inputShape) }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = ReLU.forward(x)
        if training { cachedOutput = y }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        ReLU.backward(output: cachedOutput!, dy: dy)
    }

    override func clearCache() { cachedOutput = nil }
}

final class FlattenLayer: Layer {
    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: [inputShape.reduce(1, *)]) }

    override func forward(_ x: Tensor, training: Bool) -> Tensor { x.reshaped([x.batch, outputShape[0]]) }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? { dy.reshaped([dy.batch] + inputShape) }
}

final class BatchNormLayer: Layer {
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

    override var parameters: [Parameter] { [gamma, beta] }

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
}

/// Local response normalisation across channels (`lrn`, see ``LocalResponseNorm``).
final class LRNLayer: Layer {
    let norm: LocalResponseNorm
    private var cached: (x: Tensor, y: Tensor, scale: Tensor)?

    init(inputShape: [Int], size: Int, alpha: Float, beta: Float, k: Float) {
        norm = LocalResponseNorm(channels: inputShape[0], plane: inputShape.dropFirst().reduce(1, *), size: size,
                                 alpha: alpha, beta: beta, k: k)
        super.init(inputShape: inputShape, outputShape: inputShape)
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
}
