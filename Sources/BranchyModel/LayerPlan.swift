import BranchyTensor

/// One checked layer of a ``NetworkPlan``: its kind and every shape it needs, but no tensors yet.
enum LayerPlan: Equatable {
    case conv(name: String, geometry: Conv2DGeometry, bias: Bool)
    case maxPool(Pool2DGeometry)
    case avgPool(Pool2DGeometry)
    case relu(shape: [Int])
    case flatten(shape: [Int])
    case linear(name: String, inputShape: [Int], out: Int, bias: Bool)
    case batchNorm(name: String, shape: [Int], epsilon: Float, momentum: Float?)
    case sign(shape: [Int])
    case binaryLinear(name: String, inputShape: [Int], out: Int, bias: Bool)

    /// Allocates the layer and its tensors.
    func makeLayer() -> Layer {
        switch self {
        case .conv(let name, let geometry, let bias): ConvLayer(prefix: name, geometry: geometry, hasBias: bias)
        case .maxPool(let geometry): MaxPoolLayer(geometry: geometry)
        case .avgPool(let geometry): AvgPoolLayer(geometry: geometry)
        case .relu(let shape): ReLULayer(inputShape: shape)
        case .flatten(let shape): FlattenLayer(inputShape: shape)
        case .linear(let name, let inputShape, let out, let bias): LinearLayer(prefix: name, inputShape: inputShape, out: out, hasBias: bias)
        case .batchNorm(let name, let shape, let epsilon, let momentum):
            BatchNormLayer(prefix: name, inputShape: shape, epsilon: epsilon, momentum: momentum)
        case .sign(let shape): SignLayer(inputShape: shape)
        case .binaryLinear(let name, let inputShape, let out, let bias):
            BinaryLinearLayer(prefix: name, inputShape: inputShape, out: out, hasBias: bias)
        }
    }
}
