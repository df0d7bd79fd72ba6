import BranchyTensor

/// A layer of the network with a forward pass, a backward pass and its parameters.
///
/// Every kind of layer is an ``Operator``: a subclass that also knows its `op` name in
/// `model.json`, how to check and plan a description of it, and its compiled form.
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

    /// Tensors of the weights file that are not trained (a batch norm's running statistics),
    /// by name, in a fixed order. Sublayers report their own.
    var stateTensors: [(name: String, value: Tensor)] { [] }

    /// Sets the state tensor `name`; false when this layer (not counting sublayers) has none of that name.
    func assignState(_ name: String, _ value: Tensor) -> Bool { false }

    /// The compiled inference form of this layer: its step (nil when it needs none, as a
    /// flatten) and how many of the `following` layers (those after it in its list) the step
    /// fuses in. Records the workspace sizes the step needs in `compiler`.
    func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        fatalError("no compiled form for \(type(of: self))")
    }
}

extension Sequence where Element == Layer {
    /// These layers and every layer nested in them, depth first, each before its sublayers.
    var flattened: [Layer] { flatMap { [$0] + $0.sublayers.flattened } }
}
