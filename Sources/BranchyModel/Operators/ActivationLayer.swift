import BranchyTensor

/// The base of elementwise activations without fields or parameters (`sign`, `hardswish`):
/// the output has the input's shape, training keeps the input for the backward pass, and
/// compiled inference runs ``kernel(isa:)`` on each sample. A subclass that is an ``Operator``
/// gets its ``Operator/plan(_:)`` from here.
class ActivationLayer: Layer {
    private var cachedInput: Tensor?

    required init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: inputShape) }

    /// y from x, elementwise.
    func apply(_ x: Tensor) -> Tensor { fatalError("abstract") }

    /// dx from dy, x the forward input.
    func gradient(input x: Tensor, dy: Tensor) -> Tensor { fatalError("abstract") }

    /// The compiled form on `isa`: maps `count` floats from x to y, with the bits of ``apply(_:)``.
    func kernel(isa: KernelISA) -> ElementwiseStep.Kernel { fatalError("abstract") }

    override final func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return apply(x)
    }

    override final func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        gradient(input: cachedInput!, dy: dy)
    }

    override final func clearCache() { cachedInput = nil }

    override final func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler)
        -> (step: (any CompiledStep)?, fused: Int)
    {
        (ElementwiseStep(outputCount: outputShape.reduce(1, *), kernel: kernel(isa: compiler.isa)), 0)
    }
}

extension Operator where Self: ActivationLayer {
    static func plan(_ c: LayerContext) throws -> LayerPlan {
        c.sameShape { Self(inputShape: $0) }
    }
}
