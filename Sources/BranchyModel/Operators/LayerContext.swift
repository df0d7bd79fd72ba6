/// What an ``Operator`` plans one layer with: the layer's description, where it stands, its
/// input shape, and the checks every operator uses. Every error names the model file and the
/// key path of the offending value (``location``, or a key below it).
struct LayerContext {
    /// The layer's description.
    let spec: LayerSpec
    /// Key path of the layer, e.g. `stages[0].trunk[2]`.
    let location: String
    /// Shape of one input item.
    let input: [Int]
    /// Number of residual blocks around the layer.
    let depth: Int
    let checker: ModelChecker
    let names: NameScope

    /// An error at the layer.
    func fail(_ reason: String) -> ModelError { checker.fail(location, reason) }

    /// An error at the layer's `key`.
    func fail(at key: String, _ reason: String) -> ModelError { checker.fail("\(location).\(key)", reason) }

    /// The value of `key` (a default already substituted), which must be present and lie in
    /// `min...ModelLimits.maxSize`.
    func need(_ value: Int?, _ key: String, min: Int = 1) throws -> Int {
        guard let value else { throw fail(at: key, "'\(spec.op)' needs '\(key)'") }
        return try checker.size(value, at: "\(location).\(key)", min: min)
    }

    /// The layer's tensor prefix (`STAGE.trunk.NAME` or `STAGE.exit.NAME`), its `name` checked
    /// to be present and unused in the layer's trunk or exit, nested blocks included.
    /// `hasWeights` only words the message for a missing name.
    func name(hasWeights: Bool = true) throws -> String {
        guard let n = spec.name, !n.isEmpty else {
            throw fail(at: "name", "'\(spec.op)' needs a 'name'" + (hasWeights ? " (it has weights)" : ""))
        }
        guard names.used.insert(n).inserted else {
            throw fail(at: "name", "layer name '\(n)' used twice in \(names.scope)"
                + (depth > 0 ? " (names must be unique across its residual blocks too)" : ""))
        }
        return "\(names.prefix).\(n)"
    }

    /// The input as (channels, height, width); throws unless it is one.
    func image() throws -> (channels: Int, height: Int, width: Int) {
        guard input.count == 3 else { throw fail("'\(spec.op)' needs a (C, H, W) input, got \(input)") }
        return (input[0], input[1], input[2])
    }

    /// Throws unless a tensor the layer allocates (`what`: "weight", a workspace) is within
    /// ``ModelLimits/maxTensorElements``.
    func tensor(_ what: String, _ shape: [Int]) throws {
        try checker.within(ModelLimits.maxTensorElements, what, shape, unit: "elements", at: location)
    }

    /// Throws unless the values of one sample (`what`: "output") are within ``ModelLimits/maxFeatureElements``.
    func feature(_ what: String, _ shape: [Int]) throws {
        try checker.within(ModelLimits.maxFeatureElements, what, shape, unit: "values per sample", at: location)
    }

    /// Adds the layer's tensors of `shapes` (each already checked) to the model's parameter
    /// count, throwing when the total passes ``ModelLimits/maxParameters``.
    func count(_ shapes: [[Int]]) throws {
        try checker.count(shapes, at: location)
    }

    /// Plans `specs`, the layers under the layer's `key` (a residual block's `layers`), on the
    /// layer's input, one residual level deeper, their names in the same scope.
    func plan(_ specs: [LayerSpec], key: String) throws -> (layers: [LayerPlan], output: [Int]) {
        try checker.layers(specs, at: "\(location).\(key)", input: input, depth: depth + 1, names: names)
    }

    /// The plan of a layer without parameters whose output has the input's shape.
    func sameShape(_ make: @escaping (_ shape: [Int]) -> Layer) -> LayerPlan {
        let shape = input
        return LayerPlan(shape) { make(shape) }
    }
}

/// The layer names used in one stage's trunk or exit, whose tensors share one prefix
/// (residual blocks' layers included).
final class NameScope {
    /// Tensor name prefix, e.g. `device.trunk`.
    let prefix: String
    /// The list as messages name it, e.g. `stages[0].trunk`.
    let scope: String
    var used = Set<String>()

    init(prefix: String, scope: String) { self.prefix = prefix; self.scope = scope }
}
