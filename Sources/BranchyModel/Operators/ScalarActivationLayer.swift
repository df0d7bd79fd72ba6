import BranchyTensor

/// The base of elementwise activations given by a scalar function with constants (`clip`,
/// `leakyrelu`, `sigmoid`, `hardsigmoid`): ``value(_:)`` maps one value, ``derivative(_:)``
/// gives dy/dx at an input. Forward, training and compiled inference all map with
/// ``value(_:)``, so they agree bit for bit.
class ScalarActivationLayer: ActivationLayer {
    /// y for one x.
    func value(_ x: Float) -> Float { fatalError("abstract") }
    /// dy/dx at x.
    func derivative(_ x: Float) -> Float { fatalError("abstract") }

    override final func apply(_ x: Tensor) -> Tensor { Tensor(shape: x.shape, data: x.data.map(value)) }

    override final func gradient(input x: Tensor, dy: Tensor) -> Tensor {
        var dx = dy
        for i in 0..<dx.count { dx.data[i] *= derivative(x.data[i]) }
        return dx
    }

    /// The compiled form: ``scalarKernel`` on each value (a subclass may give a tighter loop).
    override func kernel(isa: KernelISA) -> ElementwiseStep.Kernel {
        let f = scalarKernel
        return { count, x, y in for i in 0..<count { y[i] = f(x[i]) } }
    }

    /// ``value(_:)`` as a sendable closure over the layer's constants.
    var scalarKernel: @Sendable (Float) -> Float { fatalError("abstract") }
}
