import BranchyTensor

/// Parallel branches (`branches`): `name`, `merge` (`add`, `mul` or `concat`) and `branches`
/// (at least two lists of layers; an empty list is the identity), which belong to `branches`
/// alone. Every branch takes the block's input; their outputs are added (all of one shape),
/// multiplied (each of the output's shape or (C, 1, 1), scaling whole channels: the
/// squeeze-excitation gate) or concatenated along the first axis (channels). This is how an
/// imported graph's Add, Mul and Concat of several paths are described; a two-branch sum is a
/// ``ResidualLayer``. Layers inside are named as if they stood in the enclosing list.
final class BranchesLayer: Layer, Operator {
    static let op = "branches"
    static let exclusiveKeys = ["merge", "branches"]

    typealias Merge = BranchMerge

    let name: String
    let merge: Merge
    let branches: [[Layer]]
    private var cachedOutputs: [Tensor] = []

    init(name: String, merge: Merge, branches: [[Layer]], inputShape: [Int], outputShape: [Int]) {
        self.name = name
        self.merge = merge
        self.branches = branches
        super.init(inputShape: inputShape, outputShape: outputShape)
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let name = try c.name(hasWeights: false)
        let block = c.spec.name!
        guard c.depth < ModelLimits.maxNesting else {
            throw c.fail("block '\(block)' is nested \(c.depth + 1) deep, more than the limit of \(ModelLimits.maxNesting)")
        }
        guard let word = c.spec.merge else { throw c.fail(at: "merge", "'branches' needs 'merge' (add, mul or concat)") }
        guard let merge = Merge(rawValue: word) else {
            throw c.fail(at: "merge", "unknown merge '\(word)' (expected add, mul or concat)")
        }
        guard let specs = c.spec.branches, specs.count >= 2 else {
            throw c.fail(at: "branches", "block '\(block)' needs at least two branches")
        }
        var planned: [(layers: [LayerPlan], output: [Int])] = []
        for (i, branch) in specs.enumerated() { planned.append(try c.plan(branch, key: "branches[\(i)]")) }
        let shapes = planned.map(\.output)
        let output = try outputShape(merge, shapes) { c.fail(at: "branches", "block '\(block)': " + $0) }
        try c.feature("output", output)
        let input = c.input
        return LayerPlan(output) {
            BranchesLayer(name: name, merge: merge, branches: planned.map { $0.layers.map { $0.make() } },
                          inputShape: input, outputShape: output)
        }
    }

    /// The merged shape of branches of `shapes`, or the reason they do not merge.
    static func outputShape(_ merge: Merge, _ shapes: [[Int]], fail: (String) -> Error) throws -> [Int] {
        try merge.outputShape(shapes, fail: fail)
    }

    override var parameters: [Parameter] { branches.flatMap { $0.flatMap(\.parameters) } }
    override var sublayers: [Layer] { branches.flatMap { $0 } }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let outputs = branches.map { $0.reduce(x) { $1.forward($0, training: training) } }
        if training { cachedOutputs = outputs }
        let n = x.batch
        var y = Tensor(shape: [n] + outputShape)
        let out = outputShape.reduce(1, *)
        switch merge {
        case .add, .mul:
            for i in 0..<y.count { y.data[i] = merge == .add ? 0 : 1 }
            for o in outputs {
                let per = o.count / n, plane = out / max(per, 1)
                for s in 0..<n {
                    for i in 0..<out {
                        let v = o.data[s * per + (per == out ? i : i / plane)]
                        if merge == .add { y.data[s * out + i] += v } else { y.data[s * out + i] *= v }
                    }
                }
            }
        case .concat:
            var offset = 0
            for o in outputs {
                let per = o.count / n
                for s in 0..<n { for i in 0..<per { y.data[s * out + offset + i] = o.data[s * per + i] } }
                offset += per
            }
        }
        return y
    }

    /// Each branch gets its share of dy (all of it for a sum; dy times the other factors for a
    /// product, summed over each plane for a (C, 1, 1) factor; its slice for a concatenation),
    /// and the input gradient is the sum of the branches'.
    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let n = dy.batch, out = outputShape.reduce(1, *)
        var dx: Tensor? = nil
        var offset = 0
        for (b, layers) in branches.enumerated() {
            let mine = cachedOutputs[b]
            let per = mine.count / n
            var d = Tensor(shape: mine.shape)
            switch merge {
            case .add: d = dy.reshaped(mine.shape)
            case .mul:
                for s in 0..<n {
                    for i in 0..<out {
                        var g = dy.data[s * out + i]
                        for (j, other) in cachedOutputs.enumerated() where j != b {
                            let op = other.count / n
                            g *= other.data[s * op + (op == out ? i : i / (out / op))]
                        }
                        d.data[s * per + (per == out ? i : i / (out / per))] += g
                    }
                }
            case .concat:
                for s in 0..<n { for i in 0..<per { d.data[s * per + i] = dy.data[s * out + offset + i] } }
                offset += per
            }
            var g: Tensor? = d
            for (i, layer) in layers.enumerated().reversed() {
                g = layer.backward(g!, needInputGradient: i > 0 || needInputGradient)
                if g == nil { break }
            }
            guard needInputGradient, let g else { continue }
            if var sum = dx {
                for i in 0..<sum.count { sum.data[i] += g.data[i] }
                dx = sum
            } else {
                dx = g.reshaped([n] + inputShape)
            }
        }
        return dx
    }

    override func clearCache() {
        cachedOutputs = []
        for l in sublayers { l.clearCache() }
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        compiler.maxActivation = max(compiler.maxActivation, inputShape.reduce(1, *))
        let level = compiler.level + 1
        let steps = branches.map { compiler.compile($0, level: level) }
        let counts = branches.map { $0.last?.outputShape.reduce(1, *) ?? inputShape.reduce(1, *) }
        return (BranchesStep(merge: merge, branches: steps, counts: counts, outputCount: outputShape.reduce(1, *)), 0)
    }
}

/// Parallel branches compiled for inference, on a group of samples: each branch runs one
/// workspace level deeper, into the output (the first full-size branch of a sum or product)
/// or this level's spare buffer, and is merged from there.
struct BranchesStep: CompiledStep {
    let merge: BranchesLayer.Merge
    let branches: [[any CompiledStep]]
    /// Floats of one sample's output of each branch.
    let counts: [Int]
    let outputCount: Int

    var perSample: Bool { false }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        let spare = run.shortcutBuffer
        let out = outputCount
        if merge == .concat {
            var offset = 0
            for (b, steps) in branches.enumerated() {
                let per = counts[b]
                run.nested(steps, n, x, inCount, spare)
                for s in 0..<n { (y + s * out + offset).update(from: spare + s * per, count: per) }
                offset += per
            }
            return
        }
        let first = counts.firstIndex(of: out)!
        run.nested(branches[first], n, x, inCount, y)
        for (b, steps) in branches.enumerated() where b != first {
            let per = counts[b]
            run.nested(steps, n, x, inCount, spare)
            if merge == .add {
                for i in 0..<n * out { y[i] += spare[i] }
            } else if per == out {
                for i in 0..<n * out { y[i] *= spare[i] }
            } else {
                let plane = out / per
                for s in 0..<n {
                    for c in 0..<per {
                        let f = spare[s * per + c], row = y + s * out + c * plane
                        for i in 0..<plane { row[i] *= f }
                    }
                }
            }
        }
    }
}

extension LayerSpec {
    /// A `branches` block.
    public static func branches(_ name: String, merge: String, _ branches: [[LayerSpec]]) -> LayerSpec {
        LayerSpec(op: "branches", name: name, merge: merge, branches: branches)
    }
}

/// How a `branches` block combines its branches' outputs.
public enum BranchMerge: String, CaseIterable, Sendable {
    case add, mul, concat

    /// The merged shape of branches of `shapes` (each without the batch axis), or the reason
    /// they do not merge, thrown as `fail` makes it.
    public func outputShape(_ shapes: [[Int]], fail: (String) -> Error) throws -> [Int] {
        let merge = self
        let full = shapes.max { $0.reduce(1, *) < $1.reduce(1, *) }!
        switch merge {
        case .add:
            guard shapes.allSatisfy({ $0 == full }) else { throw fail("added branches must have one shape, got \(shapes)") }
            return full
        case .mul:
            for s in shapes where s != full {
                guard full.count == 3, s == [full[0], 1, 1] else {
                    throw fail("multiplied branches must have the output's shape \(full) or (\(full[0]), 1, 1), got \(s)")
                }
            }
            return full
        case .concat:
            let rest = Array(shapes[0].dropFirst())
            guard shapes.allSatisfy({ Array($0.dropFirst()) == rest && !$0.isEmpty }) else {
                throw fail("concatenated branches must agree on every axis but the first, got \(shapes)")
            }
            return [shapes.reduce(0) { $0 + $1[0] }] + rest
        }
    }
}
