/// The human-readable description of an early-exit network (the `model.json` of a model directory).
///
/// A model is a sequence of *stages*. Each stage is a trunk segment followed by an exit
/// branch; the trunk output of one stage is the input of the next. The device, edge and
/// cloud tiers each host one or more consecutive stages. The last stage's exit always
/// classifies; earlier exits classify a sample when the entropy of their softmax is below
/// a threshold.
public struct ModelSpec: Codable, Sendable, Equatable {
    /// Architecture name, e.g. `b-lenet3`.
    public var name: String
    /// Shape of one input sample, `[C, H, W]`.
    public var input: [Int]
    /// Number of classes every exit predicts.
    public var classes: Int
    /// Stages in order from the input.
    public var stages: [StageSpec]
    /// Defaults shipped with trained weights.
    public var defaults: Defaults?

    public init(name: String, input: [Int], classes: Int, stages: [StageSpec], defaults: Defaults? = nil) {
        self.name = name; self.input = input; self.classes = classes; self.stages = stages; self.defaults = defaults
    }

    /// Run-time defaults stored with a trained model.
    public struct Defaults: Codable, Sendable, Equatable {
        /// Entropy threshold for every exit but the last (exit when H < T).
        public var thresholds: [Float]
        /// Feature codecs assumed between stages when evaluating: one name `FeatureCodecKind`
        /// accepts (`float32`, `float16`, `int8`, `uint8`, `int8-channel`, `int4`, `sign` or `1bit`;
        /// any case) for every link, or a comma-separated list of them with one per link between
        /// stages, in order (`sign,int4`). Lossless compression (`+zstd`) belongs to a topology's
        /// links, not to a model. Building a ``Network`` rejects any other name or count.
        public var codec: String?
        public init(thresholds: [Float], codec: String? = nil) { self.thresholds = thresholds; self.codec = codec }
    }
}

/// One stage: a trunk segment and the exit branch at its end.
public struct StageSpec: Codable, Sendable, Equatable {
    public var name: String
    public var trunk: [LayerSpec]
    public var exit: ExitSpec
    public init(name: String, trunk: [LayerSpec], exit: ExitSpec) { self.name = name; self.trunk = trunk; self.exit = exit }
}

/// An exit branch: layers that turn the stage's trunk output into class logits.
public struct ExitSpec: Codable, Sendable, Equatable {
    public var name: String
    public var layers: [LayerSpec]
    public init(name: String, layers: [LayerSpec]) { self.name = name; self.layers = layers }
}

/// One layer. `op` selects the kind; the other fields apply to some kinds only.
///
/// | op | fields |
/// |---|---|
/// | `conv` | `name`, `out`, `kernel`, `stride` (1), `pad` (0), `bias` (true) |
/// | `maxpool`, `avgpool` | `kernel`, `stride` (= kernel), `pad` (0), `ceil` (false) |
/// | `relu`, `flatten` | — |
/// | `linear` | `name`, `out`, `bias` (true) |
/// | `batchnorm` | `name`, `epsilon` (1e-5), `momentum` (none: trained with the running statistics as constants; else with batch statistics, updating the running ones). Compiled inference folds a batch norm that directly follows a `conv` into its weights and bias |
/// | `lrn` | `size` (5, odd), `alpha` (1e-4), `beta` (0.75), `k` (2): local response normalisation across channels, y = x / (k + alpha · Σ x²)^beta over the `size` channels centred on each (Chainer's and Caffe's form with alpha not divided by size) |
/// | `padchannels` | `out`, `pad` (out − input channels): zero channels added to reach `out`, `pad` of them before the input's (BranchyNet's ResNet shortcut) |
/// | `residual` | `name`, `layers` (the body), `shortcut` (none: identity): y = body(x) + shortcut(x); both must give the same shape. A ReLU after the addition is a `relu` layer after the block |
/// | `sign` | — (y = +1 where x ≥ 0, so 0 maps to +1, else −1; trained straight-through, clipped at abs(x) ≤ 1) |
/// | `binlinear` | `name`, `out`, `bias` (true): XNOR-Net binary linear, y[o] = α[o] · dot(sign(x), sign(W[o])) + b[o], with α[o] = mean abs(W[o]), the mean magnitude of output o's float weights (recomputed from them at every step in training) |
///
/// The layers of a `residual` block (body and shortcut) are named like any other: their
/// tensors are `STAGE.trunk.NAME.weight` (or `.exit.`), so every name must be unique within a
/// stage's trunk or exit, nested blocks included. Blocks nest at most
/// ``ModelLimits/maxNesting`` deep. `layers` and `shortcut` belong to `residual` only, the
/// `lrn` fields to `lrn` only; elsewhere they are refused.
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
    public var op: String
    public var name: String?
    public var out: Int?
    public var kernel: Int?
    public var stride: Int?
    public var pad: Int?
    public var ceil: Bool?
    public var bias: Bool?
    public var epsilon: Float?
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

    public init(op: String, name: String? = nil, out: Int? = nil, kernel: Int? = nil, stride: Int? = nil,
                pad: Int? = nil, ceil: Bool? = nil, bias: Bool? = nil, epsilon: Float? = nil, momentum: Float? = nil,
                size: Int? = nil, alpha: Float? = nil, beta: Float? = nil, k: Float? = nil,
                layers: [LayerSpec]? = nil, shortcut: [LayerSpec]? = nil) {
        self.op = op; self.name = name; self.out = out; self.kernel = kernel; self.stride = stride
        self.pad = pad; self.ceil = ceil; self.bias = bias; self.epsilon = epsilon; self.momentum = momentum
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
        self.layers = layers; self.shortcut = shortcut
    }

    public static func conv(_ name: String, out: Int, kernel: Int, stride: Int = 1, pad: Int = 0) -> LayerSpec {
        LayerSpec(op: "conv", name: name, out: out, kernel: kernel, stride: stride == 1 ? nil : stride, pad: pad)
    }
    public static func maxPool(_ kernel: Int = 2, stride: Int? = nil, ceil: Bool = false) -> LayerSpec {
        LayerSpec(op: "maxpool", kernel: kernel, stride: stride, ceil: ceil ? true : nil)
    }
    public static let relu = LayerSpec(op: "relu")
    public static let flatten = LayerSpec(op: "flatten")
    public static func linear(_ name: String, out: Int) -> LayerSpec { LayerSpec(op: "linear", name: name, out: out) }
    public static func batchNorm(_ name: String, momentum: Float? = nil) -> LayerSpec {
        LayerSpec(op: "batchnorm", name: name, momentum: momentum)
    }
    public static func avgPool(_ kernel: Int, stride: Int? = nil) -> LayerSpec {
        LayerSpec(op: "avgpool", kernel: kernel, stride: stride)
    }
    public static func lrn(size: Int, alpha: Float, beta: Float, k: Float) -> LayerSpec {
        LayerSpec(op: "lrn", size: size, alpha: alpha, beta: beta, k: k)
    }
    public static func padChannels(out: Int) -> LayerSpec { LayerSpec(op: "padchannels", out: out) }
    public static func residual(_ name: String, _ body: [LayerSpec], shortcut: [LayerSpec]? = nil) -> LayerSpec {
        LayerSpec(op: "residual", name: name, layers: body, shortcut: shortcut)
    }
    public static let sign = LayerSpec(op: "sign")
    public static func binaryLinear(_ name: String, out: Int) -> LayerSpec { LayerSpec(op: "binlinear", name: name, out: out) }
}
