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
        let checker = ModelChecker(file: file)
        stages = try checker.stages(of: spec)
        try checker.defaults(of: spec)
    }
}

/// The checks of ``NetworkPlan``, with the running parameter count. Operators check their
/// layers through a ``LayerContext`` on it.
final class ModelChecker {
    let file: String
    private(set) var parameters = 0

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

    /// Adds a layer's tensors (already checked one by one) to the model's total.
    func count(_ shapes: [[Int]], at: String) throws {
        for shape in shapes {
            let (sum, overflow) = parameters.addingReportingOverflow(ModelLimits.elementCount(shape) ?? Int.max)
            guard !overflow, sum <= ModelLimits.maxParameters else {
                throw fail(at, "this layer brings the model to \(overflow ? "more than \(Int.max)" : "\(sum)") parameters, "
                    + "more than the limit of \(ModelLimits.maxParameters) parameters")
            }
            parameters = sum
        }
    }

    func stages(of spec: ModelSpec) throws -> [NetworkPlan.Stage] {
        guard spec.input.count == 3, spec.input.allSatisfy({ $0 > 0 }) else {
            throw fail("input", "expected [channels, height, width] with positive sizes, got \(spec.input)")
        }
        for (i, dimension) in spec.input.enumerated() { _ = try size(dimension, at: "input[\(i)]") }
        try within(ModelLimits.maxFeatureElements, "input", spec.input, unit: "values per sample", at: "input")
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
            let trunk = try layers(stage.trunk, at: "\(at).trunk", input: shape, depth: 0,
                                   names: NameScope(prefix: "\(stage.name).trunk", scope: "\(at).trunk"))
            shape = trunk.output
            let exit = try layers(stage.exit.layers, at: "\(at).exit.layers", input: shape, depth: 0,
                                  names: NameScope(prefix: "\(stage.name).exit", scope: "\(at).exit.layers"))
            guard exit.output == [spec.classes] else {
                throw fail("\(at).exit", "exit '\(stage.exit.name)' must end in \(spec.classes) logits, but produces shape \(exit.output)")
            }
            planned.append(NetworkPlan.Stage(name: stage.name, exitName: stage.exit.name, trunk: trunk.layers, exit: exit.layers,
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

    /// Refuses the keys that belong to other ops (each operator's ``Operator/exclusiveKeys``),
    /// such as `layers` (a `residual` block's) on a `conv`.
    func misplacedKeys(_ l: LayerSpec, at here: String) throws {
        let set = Set(l.keysSet)
        for owner in Operators.all where owner.op != l.op {
            for key in owner.exclusiveKeys where set.contains(key) {
                throw fail("\(here).\(key)", "'\(key)' belongs to '\(owner.op)' layers only, not to '\(l.op)'")
            }
        }
    }

    /// Plans `specs` in order on `input`, each by its operator; returns the plans and the last
    /// output shape.
    ///
    /// `names` holds the layer names already used in the stage's trunk or exit (whose tensors
    /// share one prefix), residual blocks' layers included; `depth` is the number of residual
    /// blocks around `specs`.
    func layers(_ specs: [LayerSpec], at: String, input: [Int], depth: Int, names: NameScope) throws
        -> (layers: [LayerPlan], output: [Int])
    {
        var planned: [LayerPlan] = []
        var shape = input
        for (i, l) in specs.enumerated() {
            let here = "\(at)[\(i)]"
            try misplacedKeys(l, at: here)
            guard let op = Operators.named(l.op) else {
                throw fail("\(here).op", "unknown op '\(l.op)' (expected \(Operators.names))")
            }
            let layer = try op.plan(LayerContext(spec: l, location: here, input: shape, depth: depth, checker: self, names: names))
            planned.append(layer)
            shape = layer.outputShape
        }
        return (planned, shape)
    }
}
