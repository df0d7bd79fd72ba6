import BranchyModel
import BranchyTensor

/// Writes decomposed chains as Branchy layer descriptions: names each layer with weights (and
/// each block) after its ONNX node, unique in the model, and collects the tensors under the
/// names the description gives them (`STAGE.trunk.NAME.weight`).
struct SpecBuilder {
    let ops: [ActivationOp]
    private(set) var tensors: [String: BranchyTensor.Tensor] = [:]
    private var used = Set<String>()

    init(ops: [ActivationOp]) { self.ops = ops }

    /// A layer name from an ONNX name: letters, digits, `_` and `-`, the rest `_`
    /// (`/layer1/0/conv1/Conv` → `layer1_0_conv1_Conv`).
    static func sanitize(_ name: String) -> String {
        var s = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "_" })
        while s.hasPrefix("_") { s.removeFirst() }
        while s.hasSuffix("_") { s.removeLast() }
        return s.isEmpty ? "layer" : String(s.prefix(80))
    }

    private mutating func unique(_ node: String) -> String {
        let base = Self.sanitize(node)
        var name = base, n = 2
        while !used.insert(name).inserted { name = "\(base)_\(n)"; n += 1 }
        return name
    }

    /// The descriptions of `items`, whose tensors take `prefix` (`STAGE.trunk` or `STAGE.exit`).
    mutating func layers(_ items: [Decomposition.Item], prefix: String) -> [LayerSpec] {
        items.map { layer($0, prefix: prefix) }
    }

    private mutating func layer(_ item: Decomposition.Item, prefix: String) -> LayerSpec {
        switch item {
        case .op(let p):
            guard case .layer(var spec, let weights) = ops[p].kind else { fatalError("a merge op outside a block") }
            if !weights.isEmpty {
                let name = unique(ops[p].node)
                spec.name = name
                for (suffix, value) in weights { tensors["\(prefix).\(name).\(suffix)"] = value }
            }
            return spec
        case .block(let p, let branches):
            guard case .merge(let word) = ops[p].kind else { fatalError("a layer op as a block") }
            let name = unique(ops[p].node)
            var specs = branches.map { layers($0, prefix: prefix) }
            if word == "add", specs.count == 2, !(specs[0].isEmpty && specs[1].isEmpty) {
                if specs[0].isEmpty { specs.swapAt(0, 1) }
                return .residual(name, specs[0], shortcut: specs[1].isEmpty ? nil : specs[1])
            }
            return .branches(name, merge: word, specs)
        }
    }
}
