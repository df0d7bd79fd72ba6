/// One layer of a stage's trunk or exit (an element of `trunk` or `layers` in `model.json`).
/// `op` selects the kind; the other fields apply to some kinds only.
///
/// Every kind is an ``Operator`` listed in ``Operators/all``; its file in
/// Sources/BranchyModel/Operators says which fields it reads, their defaults and meaning
/// (docs/operators.md has the table). Fields an operator does not read are ignored, except
/// those that belong to another operator alone (``Operator/exclusiveKeys``: `layers` and
/// `shortcut` to `residual`, `size` and `k` to `lrn`, `groups` and `dilation` to `conv`, `min`
/// and `max` to `clip`, `merge` and `branches` to `branches`), which are refused.
///
/// The layers of a `residual` block (body and shortcut) are named like any other: their
/// tensors are `STAGE.trunk.NAME.weight` (or `.exit.`), so every name must be unique within a
/// stage's trunk or exit, nested blocks included. Blocks nest at most
/// ``ModelLimits/maxNesting`` deep.
///
/// A block that halves the map and doubles the channels, with a projection shortcut, then its ReLU:
///
///     {"op": "residual", "name": "b1",
///      "layers": [{"op": "conv", "name": "b1.conv1", "out": 32, "kernel": 3, "stride": 2, "pad": 1},
///                 {"op": "batchnorm", "name": "b1.bn1"}, {"op": "relu"},
///                 {"op": "conv", "name": "b1.conv2", "out": 32, "kernel": 3, "pad": 1}, {"op": "batchnorm", "name": "b1.bn2"}],
///      "shortcut": [{"op": "conv", "name": "b1.proj", "out": 32, "kernel": 1, "stride": 2}, {"op": "batchnorm", "name": "b1.bnp"}]},
///     {"op": "relu"}
public struct LayerSpec: Codable, Sendable, Equatable {
    /// The operator (``Operator/op``).
    public var op: String
    /// The layer's name: its tensors are `STAGE.trunk.NAME.…` (layers with weights, residual blocks).
    public var name: String?
    /// Output channels or features.
    public var out: Int?
    /// Window size (square).
    public var kernel: Int?
    /// Window step.
    public var stride: Int?
    /// Zeros around the input (`padchannels`: zero channels in front).
    public var pad: Int?
    /// Pooling: round the output size up.
    public var ceil: Bool?
    /// Whether a layer with weights also has a bias.
    public var bias: Bool?
    /// Batch norm: added to the variance.
    public var epsilon: Float?
    /// Batch norm: the running statistics' update rate in training.
    public var momentum: Float?
    /// `lrn`: the window of channels, its scale, exponent and additive constant.
    public var size: Int?
    public var alpha: Float?
    public var beta: Float?
    public var k: Float?
    /// `residual`: the body.
    public var layers: [LayerSpec]?
    /// `residual`: the shortcut (absent or empty: the identity).
    public var shortcut: [LayerSpec]?
    /// `conv`: channel groups (1; the channel count: depthwise) and the kernel's dilation (1).
    public var groups: Int?
    public var dilation: Int?
    /// `clip`: the bounds (ReLU6: 0 and 6).
    public var min: Float?
    public var max: Float?
    /// `branches`: how the branches' outputs combine (`add`, `mul` or `concat`), and the branches.
    public var merge: String?
    public var branches: [[LayerSpec]]?

    /// A description with the given fields (nil: absent from the JSON). Each operator's file
    /// adds a shorthand, such as ``LayerSpec/conv(_:out:kernel:stride:pad:)``.
    public init(op: String, name: String? = nil, out: Int? = nil, kernel: Int? = nil, stride: Int? = nil,
                pad: Int? = nil, ceil: Bool? = nil, bias: Bool? = nil, epsilon: Float? = nil, momentum: Float? = nil,
                size: Int? = nil, alpha: Float? = nil, beta: Float? = nil, k: Float? = nil,
                layers: [LayerSpec]? = nil, shortcut: [LayerSpec]? = nil, groups: Int? = nil, dilation: Int? = nil,
                min: Float? = nil, max: Float? = nil, merge: String? = nil, branches: [[LayerSpec]]? = nil) {
        self.op = op; self.name = name; self.out = out; self.kernel = kernel; self.stride = stride
        self.pad = pad; self.ceil = ceil; self.bias = bias; self.epsilon = epsilon; self.momentum = momentum
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
        self.layers = layers; self.shortcut = shortcut
        self.groups = groups; self.dilation = dilation; self.min = min; self.max = max
        self.merge = merge; self.branches = branches
    }
}

extension LayerSpec {
    /// The keys this description sets (its fields that are not nil, `op` included), as
    /// written in JSON, in declaration order.
    var keysSet: [String] {
        Mirror(reflecting: self).children.compactMap { child in
            let value = Mirror(reflecting: child.value)
            return value.displayStyle == .optional && value.children.isEmpty ? nil : child.label
        }
    }
}
