import BranchyTensor

/// Sign activation (`sign`): ±1 out, the clipped straight-through estimator back (see ``Sign``).
final class SignLayer: Layer {
    private var cachedInput: Tensor?

    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: inputShape) }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return Sign.forward(x)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        Sign.backward(input: cachedInput!, dy: dy)
    }

    override func clearCache() { cachedInput = nil }
}

/// XNOR-Net binary fully connected layer (`binlinear`) over latent float weights (see ``BinaryLinear``).
/// Every forward pass binarises the current weights and recomputes α, so training sees each update.
final class BinaryLinearLayer: Layer {
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
        return BinaryLinear.forward(x: x.reshaped([x.batch, x.itemCount]), weight: weight.value, bias: bias?.value)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = BinaryLinear.backward(x: cachedInput!, weight: weight.value, dy: dy, dWeight: &weight.grad, dBias: &db,
                                       needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx.map { $0.reshaped(cachedInput!.shape) }
    }

    override func clearCache() { cachedInput = nil }
}
