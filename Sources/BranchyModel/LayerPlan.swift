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
    case lrn(shape: [Int], size: Int, alpha: Float, beta: Float, k: Float)
    case padChannels(shape: [Int], out: Int, front: Int)
    /// y = body(x) + shortcut(x); an empty shortcut is the identity.
    case residual(name: String, body: [LayerPlan], shortcut: [LayerPlan], inputShape: [Int], outputShape: [Int])
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
        case .lrn(let shape, let size, let alpha, let beta, let k):
            LRNLayer(inputShape: shape, size: size, alpha: alpha, beta: beta, k: k)
        case .padChannels(let shape, let out, let front): PadChannelsLayer(inputShape: shape, out: out, front: front)
        case .residual(let name, let body, let shortcut, let inputShape, let outputShape):
            ResidualLayer(name: name, body: body.map { $0.makeLayer() }, shortcut: shortcut.map { $0.makeLayer() },
                          inputShape: inputShape, outputShape: outputShape)
        case .sign(let shape): SignLayer(inputShape: shape)
        case .binaryLinear(let name, let inputShape, let out, let bias):
            BinaryLinearLayer(prefix: name, inputShape: inputShape, out: out, hasBias: bias)
        }
    }
}
