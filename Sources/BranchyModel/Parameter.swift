import BranchyTensor

/// A named trainable tensor with its gradient and optimiser state.
///
/// Not `Sendable`: the optimiser and ``Network/assign(_:_:)`` write it in place. Parameters
/// are shared between threads only as part of a ``Network``, on the terms stated there.
public final class Parameter {
    /// Name in the weights file, e.g. `device.trunk.conv1.weight`.
    public let name: String
    public var value: Tensor
    public var grad: Tensor
    /// Adam's first and second moment estimates.
    public var m: [Float]
    public var v: [Float]

    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
        self.grad = Tensor(shape: value.shape)
        self.m = [Float](repeating: 0, count: value.count)
        self.v = m
    }

    public func zeroGrad() {
        grad.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}
