import BranchyTensor

/// A built early-exit network: for each stage, trunk layers and exit layers with their shapes.
public final class Network: @unchecked Sendable {
    /// One stage at run time.
    public struct Stage: @unchecked Sendable {
        public let name: String
        public let exitName: String
        public let trunk: [Layer]
        public let exit: [Layer]
        /// Shape of one input item of this stage's trunk.
        public let inputShape: [Int]
        /// Shape of one output item of this stage's trunk (the features the next stage receives).
        public let outputShape: [Int]
    }

    public let spec: ModelSpec
    public let stages: [Stage]

    /// Builds the layers described by `spec`, inferring every shape; `file` names the source in errors.
    public init(spec: ModelSpec, file: String = "model.json") throws {
        func fail(_ at: String, _ reason: String) -> ModelError { ModelError(file: file, location: at, reason: reason) }
        guard spec.input.count == 3, spec.input.allSatisfy({ $0 > 0 }) else {
            throw fail("input", "expected [channels, height, width] with positive sizes, got \(spec.input)")
        }
        guard spec.classes >= 2 else { throw fail("classes", "need at least 2 classes, got \(spec.classes)") }
        guard !spec.stages.isEmpty else { throw fail("stages", "a model needs at least one stage") }
        var names = Set<String>()
        var shape = spec.input
        var built: [Stage] = []
        for (si, stage) in spec.stages.enumerated() {
            let at = "stages[\(si)]"
            guard !stage.name.isEmpty, names.insert(stage.name).inserted else {
                throw fail("\(at).name", "stage name '\(stage.name)' is empty or used twice")
            }
            let input = shape
            let trunk = try Network.build(stage.trunk, prefix: "\(stage.name).trunk", at: "\(at).trunk", shape: &shape, fail: fail)
            var exitShape = shape
            let exit = try Network.build(stage.exit.layers, prefix: "\(stage.name).exit", at: "\(at).exit.layers", shape: &exitShape, fail: fail)
            guard exitShape == [spec.classes] else {
                throw fail("\(at).exit", "exit '\(stage.exit.name)' must end in \(spec.classes) logits, but produces shape \(exitShape)")
            }
            built.append(Stage(name: stage.name, exitName: stage.exit.name, trunk: trunk, exit: exit,
                               inputShape: input, outputShape: shape))
        }
        if let d = spec.defaults {
            guard d.thresholds.count == spec.stages.count - 1 else {
                throw fail("defaults.thresholds", "need \(spec.stages.count - 1) thresholds (one per exit but the last), got \(d.thresholds.count)")
            }
            if let bad = d.thresholds.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw fail("defaults.thresholds[\(bad)]", "threshold must be finite and >= 0")
            }
        }
        self.spec = spec
        self.stages = built
    }

    private static func build(_ specs: [LayerSpec], prefix: String, at: String, shape: inout [Int],
                              fail: (String, String) -> ModelError) throws -> [Layer] {
        var layers: [Layer] = []
        var seen = Set<String>()
        for (i, l) in specs.enumerated() {
            let here = "\(at)[\(i)]"
            func need(_ v: Int?, _ key: String, min: Int = 1) throws -> Int {
                guard let v else { throw fail("\(here).\(key)", "'\(l.op)' needs '\(key)'") }
                guard v >= min else { throw fail("\(here).\(key)", "must be >= \(min), got \(v)") }
                return v
            }
            func named() throws -> String {
                guard let n = l.name, !n.isEmpty else { throw fail("\(here).name", "'\(l.op)' needs a 'name' (it has weights)") }
                guard seen.insert(n).inserted else { throw fail("\(here).name", "layer name '\(n)' used twice in \(at)") }
                return "\(prefix).\(n)"
            }
            func needImage() throws {
                guard shape.count == 3 else { throw fail(here, "'\(l.op)' needs a (C, H, W) input, got \(shape)") }
            }
            let layer: Layer
            switch l.op {
            case "conv":
                try needImage()
                let k = try need(l.kernel, "kernel"), s = try need(l.stride ?? 1, "stride"), p = try need(l.pad ?? 0, "pad", min: 0)
                let g = Conv2DGeometry(inC: shape[0], inH: shape[1], inW: shape[2], outC: try need(l.out, "out"), kH: k, kW: k, stride: s, pad: p)
                guard g.outH >= 1, g.outW >= 1 else { throw fail(here, "kernel \(k) does not fit input \(shape) with pad \(p)") }
                layer = ConvLayer(prefix: try named(), geometry: g, hasBias: l.bias ?? true)
            case "maxpool", "avgpool":
                try needImage()
                let k = try need(l.kernel, "kernel"), s = try need(l.stride ?? k, "stride"), p = try need(l.pad ?? 0, "pad", min: 0)
                guard p * 2 <= k else { throw fail("\(here).pad", "pad \(p) must be at most half the kernel \(k)") }
                let g = Pool2DGeometry(channels: shape[0], inH: shape[1], inW: shape[2], kernel: k, stride: s, pad: p, ceilMode: l.ceil ?? false)
                guard g.outH >= 1, g.outW >= 1 else { throw fail(here, "window \(k) does not fit input \(shape)") }
                layer = l.op == "maxpool"
                    ? MaxPoolLayer(geometry: g)
                    : AvgPoolLayer(geometry: g)
            case "relu":
                layer = ReLULayer(inputShape: shape)
            case "flatten":
                layer = FlattenLayer(inputShape: shape)
            case "linear":
                guard shape.count == 1 else { throw fail(here, "'linear' needs a flat input; add {\"op\": \"flatten\"} before it (input is \(shape))") }
                layer = LinearLayer(prefix: try named(), inputShape: shape, out: try need(l.out, "out"), hasBias: l.bias ?? true)
            case "batchnorm":
                guard shape.count == 3 || shape.count == 1 else { throw fail(here, "'batchnorm' needs (C, H, W) or (C) input, got \(shape)") }
                layer = BatchNormLayer(prefix: try named(), inputShape: shape, epsilon: l.epsilon ?? 1e-5)
            default:
                throw fail("\(here).op", "unknown op '\(l.op)' (expected conv, maxpool, avgpool, relu, flatten, linear or batchnorm)")
            }
            layers.append(layer)
            shape = layer.outputShape
        }
        return layers
    }

    /// Every trainable parameter, stage by stage, trunk before exit.
    public var parameters: [Parameter] {
        stages.flatMap { s in (s.trunk + s.exit).flatMap(\.parameters) }
    }

    /// Every tensor the weights file must hold, name → expected shape (parameters and batch-norm statistics).
    public var expectedTensors: [(name: String, shape: [Int])] {
        var out = parameters.map { ($0.name, $0.value.shape) }
        for s in stages { for case let bn as BatchNormLayer in s.trunk + s.exit {
            out.append((bn.statisticNames.mean, bn.mean.shape)); out.append((bn.statisticNames.variance, bn.variance.shape))
        } }
        return out
    }

    /// All tensors by name, for saving.
    public var namedTensors: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in parameters { out[p.name] = p.value }
        for s in stages { for case let bn as BatchNormLayer in s.trunk + s.exit {
            out[bn.statisticNames.mean] = bn.mean; out[bn.statisticNames.variance] = bn.variance
        } }
        return out
    }

    /// Sets a tensor by name; returns false when no such tensor exists.
    @discardableResult
    public func assign(_ name: String, _ value: Tensor) -> Bool {
        if let p = parameters.first(where: { $0.name == name }) { p.value = value; return true }
        for s in stages { for case let bn as BatchNormLayer in s.trunk + s.exit {
            if bn.statisticNames.mean == name { bn.mean = value; return true }
            if bn.statisticNames.variance == name { bn.variance = value; return true }
        } }
        return false
    }

    /// He-uniform initialisation of weights (bound √(6 / fan-in)), zero biases.
    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for p in parameters {
            if p.name.hasSuffix(".bias") { continue }
            if p.value.rank < 2 { continue }
            let fanIn = p.value.itemCount
            let bound = (6 / Float(fanIn)).squareRoot()
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-bound, bound) }
        }
    }

    /// Runs stage `index`'s trunk: x (N, inputShape…) → features (N, outputShape…).
    public func trunk(_ index: Int, _ x: Tensor, training: Bool = false) -> Tensor {
        stages[index].trunk.reduce(x) { $1.forward($0, training: training) }
    }

    /// Runs stage `index`'s exit branch on trunk features → logits (N, classes).
    public func exitLogits(_ index: Int, _ features: Tensor, training: Bool = false) -> Tensor {
        stages[index].exit.reduce(features) { $1.forward($0, training: training) }
    }
}
