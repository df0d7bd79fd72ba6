/// One kind of layer, named by `op` in `model.json`, with everything the engine does with it
/// in one type: the subclass of ``Layer`` (forward, backward, parameters, state, compiled
/// form) that also checks and plans a description of itself.
///
/// Every operator is listed once, in ``Operators/all``; nothing else names it. docs/operators.md
/// says how to add one.
protocol Operator: Layer {
    /// The layer's `op` in `model.json`.
    static var op: String { get }

    /// Keys of ``LayerSpec`` that belong to this operator alone: a layer of any other op that
    /// sets one is refused. None by default.
    static var exclusiveKeys: [String] { get }

    /// Checks the description `layer.spec` on the input shape `layer.input`, every size against
    /// ``ModelLimits`` (the tensors it will allocate counted with ``LayerContext/count(_:)``),
    /// and returns its output shape and how to allocate it. Throws a ``ModelError`` naming the
    /// offending key; allocates nothing.
    static func plan(_ layer: LayerContext) throws -> LayerPlan
}

extension Operator {
    static var exclusiveKeys: [String] { [] }
}

/// One checked layer of a ``NetworkPlan``: its output shape and how to allocate it.
struct LayerPlan {
    /// Shape of one output item.
    let outputShape: [Int]
    /// Allocates the layer and its tensors (cannot fail: everything was checked).
    let make: () -> Layer

    init(_ outputShape: [Int], make: @escaping () -> Layer) {
        self.outputShape = outputShape
        self.make = make
    }
}
