import BranchyTensor

/// Flattening (`flatten`): (N, …) → (N, product of the rest), no fields. Needed before a
/// `linear` or `binlinear` layer on a map. Compiled inference drops it (the data is already flat).
final class FlattenLayer: Layer, Operator {
    static let op = "flatten"

    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: [inputShape.reduce(1, *)]) }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        // The input shape was checked, so its product is within the feature limit.
        let input = c.input
        return LayerPlan([input.reduce(1, *)]) { FlattenLayer(inputShape: input) }
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor { x.reshaped([x.batch, outputShape[0]]) }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? { dy.reshaped([dy.batch] + inputShape) }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        (nil, 0)
    }
}

extension LayerSpec {
    /// A `flatten` layer.
    public static let flatten = LayerSpec(op: "flatten")
}
