import BranchyData

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
    /// How pixels become the input (``Preprocessing``); absent: bytes divided by 255, RGB, NCHW.
    public var preprocessing: Preprocessing?

    public init(name: String, input: [Int], classes: Int, stages: [StageSpec], defaults: Defaults? = nil,
                preprocessing: Preprocessing? = nil) {
        self.name = name; self.input = input; self.classes = classes; self.stages = stages; self.defaults = defaults
        self.preprocessing = preprocessing
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
