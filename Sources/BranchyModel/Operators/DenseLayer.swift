import BranchyTensor

/// The base of the fully connected layers (`linear`, `binlinear`): `name`, `out`, `bias` (true)
/// on a flat input; weight (out, in), PyTorch's layout, and bias (out). A subclass gives its
/// arithmetic (``apply(_:)``, ``gradient(input:dy:dWeight:dBias:needInputGradient:)``); one
/// that is an ``Operator`` gets its ``Operator/plan(_:)`` from here.
class DenseLayer: Layer {
    let weight: Parameter
    let bias: Parameter?
    private var cachedInput: Tensor?

    required init(prefix: String, inputShape: [Int], out: Int, hasBias: Bool) {
        let inF = inputShape.reduce(1, *)
        weight = Parameter(name: prefix + ".weight", value: Tensor(shape: [out, inF]))
        bias = hasBias ? Parameter(name: prefix + ".bias", value: Tensor(shape: [out])) : nil
        super.init(inputShape: inputShape, outputShape: [out])
    }

    /// y (N, out) from x (N, in).
    func apply(_ x: Tensor) -> Tensor { fatalError("abstract") }

    /// dx (or nil) from dy, x the forward input, accumulating the weight and bias gradients.
    func gradient(input x: Tensor, dy: Tensor, dWeight: inout Tensor, dBias: inout Tensor?, needInputGradient: Bool) -> Tensor? {
        fatalError("abstract")
    }

    override final var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override final func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return apply(x)
    }

    override final func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = gradient(input: cachedInput!, dy: dy, dWeight: &weight.grad, dBias: &db, needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx.map { $0.reshaped(cachedInput!.shape) }
    }

    override final func clearCache() { cachedInput = nil }
}

extension Operator where Self: DenseLayer {
    static func plan(_ c: LayerContext) throws -> LayerPlan {
        guard c.input.count == 1 else {
            throw c.fail("'\(c.spec.op)' needs a flat input; add {\"op\": \"flatten\"} before it (input is \(c.input))")
        }
        let name = try c.name()
        let out = try c.need(c.spec.out, "out")
        let weight = [out, c.input[0]]
        try c.tensor("weight", weight)
        try c.feature("output", [out])
        let bias = c.spec.bias ?? true
        try c.count(bias ? [weight, [out]] : [weight])
        let input = c.input
        return LayerPlan([out]) { Self(prefix: name, inputShape: input, out: out, hasBias: bias) }
    }
}
