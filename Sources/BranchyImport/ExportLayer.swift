import BranchyModel

/// One layer as the ONNX export reads it: its description, its input and output shapes (taken
/// from the built ``Network``, which planned them), the layer lists nested in it, and its key
/// path for errors.
struct ExportLayer {
    var spec: LayerSpec
    /// Shape of one input item and of one output item.
    var input: [Int]
    var output: [Int]
    /// A `residual` block's body and shortcut, or a `branches` block's branches; empty for
    /// other layers.
    var nested: [[ExportLayer]]
    /// The layer's key path within its stage (`trunk[3].layers[1]`).
    var location: String

    /// `specs` paired with `layers`, the layers the network built from them (one for one, in
    /// order; a block's ``Layer/sublayers`` are its nested lists one after the other). `at` is
    /// the key path of the list (`trunk`, `exit.layers`).
    static func list(_ specs: [LayerSpec], _ layers: [Layer], at location: String) -> [ExportLayer] {
        precondition(specs.count == layers.count, "a network's layers follow its description")
        return zip(specs, layers).enumerated().map { i, pair in
            let (spec, layer) = pair
            let here = "\(location)[\(i)]"
            var sublayers = layer.sublayers[...]
            let nested = nestedLists(spec).map { key, specs -> [ExportLayer] in
                defer { sublayers = sublayers.dropFirst(specs.count) }
                return list(specs, Array(sublayers.prefix(specs.count)), at: "\(here).\(key)")
            }
            return ExportLayer(spec: spec, input: layer.inputShape, output: layer.outputShape, nested: nested, location: here)
        }
    }

    /// The layer lists nested in a description, with their keys, in the order of ``Layer/sublayers``.
    private static func nestedLists(_ spec: LayerSpec) -> [(key: String, specs: [LayerSpec])] {
        switch spec.op {
        case "residual": [("layers", spec.layers ?? []), ("shortcut", spec.shortcut ?? [])]
        case "branches": (spec.branches ?? []).enumerated().map { ("branches[\($0.offset)]", $0.element) }
        default: []
        }
    }
}
