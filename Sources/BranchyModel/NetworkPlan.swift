import BranchyTensor

/// A model description checked in full, with every shape inferred, before anything is allocated.
///
/// Besides the structure (known ops, names, shapes that fit, exits that end in the class
/// logits), every size and every product of sizes is checked against ``ModelLimits`` with
/// overflow-checked arithmetic, so that building the layers afterwards cannot fail.
struct NetworkPlan {
    /// One checked stage.
    struct Stage {
        var name: String
        var exitName: String
        var trunk: [LayerPlan]
        var exit: [LayerPlan]
        var inputShape: [Int]
        var outputShape: [Int]
    }

    var stages: [Stage]

    /// Checks `spec`; `file` names the source in errors.
    init(spec: ModelSpec, file: String) throws {
        var checker = Checker(file: file)
        stages = try checker.stages(of: spec)
        try checker.defaults(of: spec)
    }
}

/// The checks of ``NetworkPlan``, with the running parameter count.
private struct Checker {
    let file: String
    var parameters = 0

    init(file: String) { self.file = file }

    func fail(_ at: String, _ reason: String) -> ModelError { ModelError(file: file, location: at, reason: reason) }

    /// `value` from `at`, checked to lie in `min...ModelLimits.maxSize`.
    func size(_ value: Int, at: String, min: Int = 1) throws -> Int {
        guard value >= min else { throw fail(at, "must be >= \(min), got \(value)") }
        guard value <= ModelLimits.maxSize else { throw fail(at, "\(value) exceeds the limit of \(ModelLimits.maxSize)") }
        return value
    }

    /// Throws unless `shape` has at most `limit` elements.
    func within(_ limit: Int, _ what: String, _ shape: [Int], unit: String, at: String) throws {
        let count = ModelLimits.elementCount(shape)
        if let count, count <= limit { return }
        let counted = count.map { "\($0)" } ?? "more than \(Int.max)"
        throw fail(at, "\(what) \(shape) is \(counted) \(unit), more than the limit of \(limit)")
    }

    func feature(_ what: String, _ shape: [Int], at: String) throws {
        try within(ModelLimits.maxFeatureElements, what, shape, unit: "values per sample", at: at)
    }

    func tensor(_ what: String, _ shape: [Int], at: String) throws {
        try within(ModelLimits.maxTensorElements, what, shape, unit: "elements", at: at)
    }

    /// Adds a layer's tensors (already checked one by one) to the model's total.
    mutating func count(_ shapes: [[Int]], at: String) throws {
        for shape in shapes {
            let (sum, overflow) = parameters.addingReportingOverflow(ModelLimits.elementCount(shape) ?? Int.max)
            guard !overflow, sum <= ModelLimits.maxParameters else {
                throw fail(at, "this layer brings the model to \(overflow ? "more than \(Int.max)" : "\(sum)") parameters, "
                    + "more than the limit of \(ModelLimits.maxParameters) parameters")
            }
            parameters = sum
        }
    }

    mutating func stages(of spec: ModelSpec) throws -> [NetworkPlan.Stage] {
        guard spec.input.count == 3, spec.input.allSatisfy({ $0 > 0 }) else {
            throw fail("input", "expected [channels, height, width] with positive sizes, got \(spec.input)")
        }
        for (i, dimension) in spec.input.enumerated() { _ = try size(dimension, at: "input[\(i)]") }
        try feature("input", spec.input, at: "input")
        guard spec.classes >= 2 else { throw fail("classes", "need at least 2 classes, got \(spec.classes)") }
        _ = try size(spec.classes, at: "classes")
        guard !spec.stages.isEmpty else { throw fail("stages", "a model needs at least one stage") }

        var names = Set<String>()
        var shape = spec.input
        var planned: [NetworkPlan.Stage] = []
        for (si, stage) in spec.stages.enumerated() {
            let at = "stages[\(si)]"
            guard !stage.name.isEmpty, names.insert(stage.name).inserted else {
                throw fail("\(at).name", "stage name '\(stage.name)' is empty or used twice")
            }
            let input = shape
            var trunkNames = Set<String>(), exitNames = Set<String>()
            let trunk = try layers(stage.trunk, prefix: "\(stage.name).trunk", at: "\(at).trunk", scope: "\(at).trunk",
                                   names: &trunkNames, depth: 0, shape: &shape)
            var exitShape = shape
            let exit = try layers(stage.exit.layers, prefix: "\(stage.name).exit", at: "\(at).exit.layers", scope: "\(at).exit.layers",
                                  names: &exitNames, depth: 0, shape: &exitShape)
            guard exitShape == [spec.classes] else {
                throw fail("\(at).exit", "exit '\(stage.exit.name)' must end in \(spec.classes) logits, but produces shape \(exitShape)")
            }
            planned.append(NetworkPlan.Stage(name: stage.name, exitName: stage.exit.name, trunk: trunk, exit: exit,
                                             inputShape: input, outputShape: shape))
        }
        return planned
    }

    func defaults(of spec: ModelSpec) throws {
        guard let d = spec.defaults else { return }
        guard d.thresholds.count == spec.stages.count - 1 else {
            throw fail("defaults.thresholds", "need \(spec.stages.count - 1) thresholds (one per exit but the last), got \(d.thresholds.count)")
        }
        if let bad = d.thresholds.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
            throw fail("defaults.thresholds[\(bad)]", "threshold must be finite and >= 0")
        }
        if let codec = d.codec {
            // One codec for every link, or one per link between stages ("sign,int8").
            let parts = codec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if let bad = parts.first(where: { FeatureCodecKind($0) == nil }) {
                let names = FeatureCodecKind.allCases.map(\.name)
                throw fail("defaults.codec", "unknown codec '\(bad)' (expected \(names.dropLast().joined(separator: ", ")) or \(names.last!))")
            }
            guard parts.count == 1 || parts.count == spec.stages.count - 1 else {
                throw fail("defaults.codec", "give one codec, or one per link between stages (\(spec.stages.count - 1)), got \(parts.count)")
            }
        }
    }

    /// Refuses the keys that belong to other ops: `layers` and `shortcut` (a `residual` block's)
    /// and `size`, `alpha`, `beta`, `k` (an `lrn` layer's).
    func misplacedKeys(_ l: LayerSpec, at here: String) throws {
        let keys: [(String, String, Bool)] = [
            ("layers", "residual", l.layers != nil), ("shortcut", "residual", l.shortcut != nil),
            ("size", "lrn", l.size != nil), ("alpha", "lrn", l.alpha != nil), ("beta", "lrn", l.beta != nil), ("k", "lrn", l.k != nil),
        ]
        for (key, owner, present) in keys where present && l.op != owner {
            throw fail("\(here).\(key)", "'\(key)' belongs to '\(owner)' layers only, not to '\(l.op)'")
        }
    }

    /// Plans `specs` in order on input `shape`, leaving the last output shape in `shape`.
    ///
    /// `names` holds the layer names already used in `scope` (a stage's trunk or exit, whose
    /// tensors share one prefix), residual blocks' layers included; `depth` is the number of
    /// residual blocks around `specs`.
    mutating func layers(_ specs: [LayerSpec], prefix: String, at: String, scope: String, names seen: inout Set<String>,
                         depth: Int, shape: inout [Int]) throws -> [LayerPlan] {
        var planned: [LayerPlan] = []
        for (i, l) in specs.enumerated() {
            let here = "\(at)[\(i)]"
            try misplacedKeys(l, at: here)
            func need(_ v: Int?, _ key: String, min: Int = 1) throws -> Int {
                guard let v else { throw fail("\(here).\(key)", "'\(l.op)' needs '\(key)'") }
                return try size(v, at: "\(here).\(key)", min: min)
            }
            func named() throws -> String {
                guard let n = l.name, !n.isEmpty else {
                    throw fail("\(here).name", "'\(l.op)' needs a 'name'" + (l.op == "residual" ? "" : " (it has weights)"))
                }
                guard seen.insert(n).inserted else {
                    throw fail("\(here).name", "layer name '\(n)' used twice in \(scope)"
                        + (depth > 0 ? " (names must be unique across its residual blocks too)" : ""))
                }
                return "\(prefix).\(n)"
            }
            func needImage() throws {
                guard shape.count == 3 else { throw fail(here, "'\(l.op)' needs a (C, H, W) input, got \(shape)") }
            }
            let layer: LayerPlan
            let output: [Int]
            switch l.op {
            case "conv":
                try needImage()
                let k = try need(l.kernel, "kernel"), s = try need(l.stride ?? 1, "stride"), p = try need(l.pad ?? 0, "pad", min: 0)
                let g = Conv2DGeometry(inC: shape[0], inH: shape[1], inW: shape[2], outC: try need(l.out, "out"), kH: k, kW: k, stride: s, pad: p)
                guard g.outH >= 1, g.outW >= 1 else { throw fail(here, "kernel \(k) does not fit input \(shape) with pad \(p)") }
                let name = try named()
                let weight = [g.outC, g.inC, k, k]
                try tensor("weight", weight, at: here)
                try tensor("convolution workspace", [g.inC, k, k, g.outH, g.outW], at: here)
                output = [g.outC, g.outH, g.outW]
                try feature("output", output, at: here)
                let bias = l.bias ?? true
                try count(bias ? [weight, [g.outC]] : [weight], at: here)
                layer = .conv(name: name, geometry: g, bias: bias)
            case "maxpool", "avgpool":
                try needImage()
                let k = try need(l.kernel, "kernel"), s = try need(l.stride ?? k, "stride"), p = try need(l.pad ?? 0, "pad", min: 0)
                guard p * 2 <= k else { throw fail("\(here).pad", "pad \(p) must be at most half the kernel \(k)") }
                let g = Pool2DGeometry(channels: shape[0], inH: shape[1], inW: shape[2], kernel: k, stride: s, pad: p, ceilMode: l.ceil ?? false)
                guard g.outH >= 1, g.outW >= 1 else { throw fail(here, "window \(k) does not fit input \(shape)") }
                output = [g.channels, g.outH, g.outW]
                try feature("output", output, at: here)
                layer = l.op == "maxpool" ? .maxPool(g) : .avgPool(g)
            case "relu":
                output = shape
                layer = .relu(shape: shape)
            case "flatten":
                // The input shape was checked, so its product is within the feature limit.
                output = [shape.reduce(1, *)]
                layer = .flatten(shape: shape)
            case "sign":
                output = shape
                layer = .sign(shape: shape)
            case "linear", "binlinear":
                guard shape.count == 1 else { throw fail(here, "'\(l.op)' needs a flat input; add {\"op\": \"flatten\"} before it (input is \(shape))") }
                let name = try named()
                let out = try need(l.out, "out")
                let weight = [out, shape[0]]
                try tensor("weight", weight, at: here)
                output = [out]
                try feature("output", output, at: here)
                let bias = l.bias ?? true
                try count(bias ? [weight, [out]] : [weight], at: here)
                layer = l.op == "linear" ? .linear(name: name, inputShape: shape, out: out, bias: bias)
                    : .binaryLinear(name: name, inputShape: shape, out: out, bias: bias)
            case "batchnorm":
                guard shape.count == 3 || shape.count == 1 else { throw fail(here, "'batchnorm' needs (C, H, W) or (C) input, got \(shape)") }
                let name = try named()
                output = shape
                // γ, β, running mean and running variance, one per channel.
                try count([[shape[0]], [shape[0]], [shape[0]], [shape[0]]], at: here)
                if let m = l.momentum, !(m > 0 && m <= 1) { throw fail("\(here).momentum", "must lie in (0, 1], got \(m)") }
                layer = .batchNorm(name: name, shape: shape, epsilon: l.epsilon ?? 1e-5, momentum: l.momentum)
            case "lrn":
                try needImage()
                let n = try need(l.size ?? 5, "size")
                guard n % 2 == 1 else { throw fail("\(here).size", "the window must be odd (centred on each channel), got \(n)") }
                let alpha = l.alpha ?? 1e-4, beta = l.beta ?? 0.75, k = l.k ?? 2
                guard alpha >= 0 else { throw fail("\(here).alpha", "must be >= 0, got \(alpha)") }
                guard beta >= 0 else { throw fail("\(here).beta", "must be >= 0, got \(beta)") }
                guard k > 0 else { throw fail("\(here).k", "must be > 0, got \(k)") }
                output = shape
                layer = .lrn(shape: shape, size: n, alpha: alpha, beta: beta, k: k)
            case "padchannels":
                try needImage()
                let out = try need(l.out, "out")
                guard out >= shape[0] else { throw fail("\(here).out", "\(out) is fewer than the input's \(shape[0]) channels") }
                let front = try need(l.pad ?? (out - shape[0]), "pad", min: 0)
                guard front <= out - shape[0] else {
                    throw fail("\(here).pad", "\(front) zero channels in front do not fit: \(shape[0]) channels padded to \(out) leave \(out - shape[0])")
                }
                output = [out, shape[1], shape[2]]
                try feature("output", output, at: here)
                layer = .padChannels(shape: shape, out: out, front: front)
            case "residual":
                let name = try named()
                guard depth < ModelLimits.maxNesting else {
                    throw fail(here, "residual block '\(l.name!)' is nested \(depth + 1) deep, more than the limit of \(ModelLimits.maxNesting)")
                }
                guard let body = l.layers, !body.isEmpty else {
                    throw fail("\(here).layers", "residual block '\(l.name!)' needs at least one layer in 'layers'")
                }
                var bodyShape = shape, shortcutShape = shape
                let bodyPlan = try layers(body, prefix: prefix, at: "\(here).layers", scope: scope, names: &seen,
                                          depth: depth + 1, shape: &bodyShape)
                let shortcutPlan = try layers(l.shortcut ?? [], prefix: prefix, at: "\(here).shortcut", scope: scope, names: &seen,
                                              depth: depth + 1, shape: &shortcutShape)
                guard bodyShape == shortcutShape else {
                    let what = shortcutPlan.isEmpty ? "its input (identity shortcut)" : "its shortcut"
                    throw fail(here, "residual block '\(l.name!)': the body gives \(bodyShape) but \(what) gives \(shortcutShape); "
                        + "both must have the same shape" + (shortcutPlan.isEmpty ? " (add a 'shortcut' that maps the input to the body's shape)" : ""))
                }
                output = bodyShape
                layer = .residual(name: name, body: bodyPlan, shortcut: shortcutPlan, inputShape: shape, outputShape: output)
            default:
                throw fail("\(here).op", "unknown op '\(l.op)' (expected conv, maxpool, avgpool, relu, flatten, linear, batchnorm, lrn, padchannels, residual, sign or binlinear)")
            }
            planned.append(layer)
            shape = output
        }
        return planned
    }
}
