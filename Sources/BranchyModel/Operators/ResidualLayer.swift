import BranchyTensor

/// A residual block (`residual`): `name`, `layers` (the body, at least one), `shortcut` (none
/// or empty: the identity); y = body(x) + shortcut(x), both branches of the same shape. A ReLU
/// after the addition is a `relu` layer after the block (compiled inference fuses it). Its
/// parameters are those of its layers, named as if they stood in the enclosing list. `layers`
/// and `shortcut` belong to `residual` alone; blocks nest at most ``ModelLimits/maxNesting`` deep.
final class ResidualLayer: Layer, Operator {
    static let op = "residual"
    static let exclusiveKeys = ["layers", "shortcut"]

    let name: String
    let body: [Layer]
    let shortcut: [Layer]

    init(name: String, body: [Layer], shortcut: [Layer], inputShape: [Int], outputShape: [Int]) {
        self.name = name
        self.body = body
        self.shortcut = shortcut
        super.init(inputShape: inputShape, outputShape: outputShape)
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let name = try c.name(hasWeights: false)
        let block = c.spec.name!
        guard c.depth < ModelLimits.maxNesting else {
            throw c.fail("residual block '\(block)' is nested \(c.depth + 1) deep, more than the limit of \(ModelLimits.maxNesting)")
        }
        guard let layers = c.spec.layers, !layers.isEmpty else {
            throw c.fail(at: "layers", "residual block '\(block)' needs at least one layer in 'layers'")
        }
        let body = try c.plan(layers, key: "layers")
        let shortcut = try c.plan(c.spec.shortcut ?? [], key: "shortcut")
        guard body.output == shortcut.output else {
            let identity = shortcut.layers.isEmpty
            throw c.fail("residual block '\(block)': the body gives \(body.output) but "
                + (identity ? "its input (identity shortcut)" : "its shortcut") + " gives \(shortcut.output); "
                + "both must have the same shape" + (identity ? " (add a 'shortcut' that maps the input to the body's shape)" : ""))
        }
        let input = c.input, output = body.output
        return LayerPlan(output) {
            ResidualLayer(name: name, body: body.layers.map { $0.make() }, shortcut: shortcut.layers.map { $0.make() },
                          inputShape: input, outputShape: output)
        }
    }

    override var parameters: [Parameter] { (body + shortcut).flatMap(\.parameters) }
    override var sublayers: [Layer] { body + shortcut }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = body.reduce(x) { $1.forward($0, training: training) }
        let s = shortcut.reduce(x) { $1.forward($0, training: training) }
        add(s, into: &y)
        return y
    }

    /// The gradient reaches the input through both branches: dx = dbody + dshortcut (dy itself
    /// for the identity). Without `needInputGradient` the branches still run backward for
    /// their parameters, and only their first layers skip the input gradient.
    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let dBody = Self.backward(body, dy, needInputGradient: needInputGradient)
        let dShortcut = Self.backward(shortcut, dy, needInputGradient: needInputGradient)
        guard needInputGradient, var dx = dBody, let dShortcut else { return nil }
        add(dShortcut, into: &dx)
        return dx.reshaped([dy.batch] + inputShape)
    }

    /// Back through `layers` in reverse; `dy` itself when there are none.
    private static func backward(_ layers: [Layer], _ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var d = dy
        for (i, layer) in layers.enumerated().reversed() {
            let need = i > 0 || needInputGradient
            let g = layer.backward(d, needInputGradient: need)
            if !need { return nil }
            d = g!
        }
        return d
    }

    override func clearCache() { for l in body + shortcut { l.clearCache() } }

    private func add(_ a: Tensor, into y: inout Tensor) {
        precondition(a.count == y.count, "residual block '\(name)': branches of \(a.count) and \(y.count) values")
        y.data.withUnsafeMutableBufferPointer { yp in
            a.data.withUnsafeBufferPointer { ap in for i in 0..<yp.count { yp[i] += ap[i] } }
        }
    }

    /// Its body and shortcut compiled one level deeper, then the sum, with a ReLU that follows fused in.
    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        let relu = following.first is ReLULayer
        let level = compiler.level + 1
        let step = ResidualStep(body: compiler.compile(body, level: level), shortcut: compiler.compile(shortcut, level: level),
                                outputCount: outputShape.reduce(1, *), relu: relu)
        return (step, relu ? 1 : 0)
    }
}

/// A residual block compiled for inference, on a group of samples: its body and shortcut run
/// as a stage's steps do, one workspace level deeper, then the sum, with the ReLU that follows
/// the block fused in.
struct ResidualStep: CompiledStep {
    let body: [any CompiledStep]
    /// Empty: the identity.
    let shortcut: [any CompiledStep]
    let outputCount: Int
    let relu: Bool

    var perSample: Bool { false }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        // The body writes y; the shortcut (unless the identity) this level's shortcut buffer.
        run.nested(body, n, x, inCount, y)
        var s = x
        if !shortcut.isEmpty {
            let b = run.shortcutBuffer
            run.nested(shortcut, n, x, inCount, b)
            s = UnsafePointer(b)
        }
        let count = n * outputCount
        if relu {
            for i in 0..<count { let v = y[i] + s[i]; y[i] = v > 0 ? v : 0 }
        } else {
            for i in 0..<count { y[i] += s[i] }
        }
    }
}

extension LayerSpec {
    /// A `residual` block.
    public static func residual(_ name: String, _ body: [LayerSpec], shortcut: [LayerSpec]? = nil) -> LayerSpec {
        LayerSpec(op: "residual", name: name, layers: body, shortcut: shortcut)
    }
}
