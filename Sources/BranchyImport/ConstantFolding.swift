import BranchyModel
import BranchyTensor

/// Evaluates, at import, the nodes whose inputs are all known: the shape arithmetic exporters
/// write around `Reshape` (Shape → Gather → Unsqueeze → Concat), `Constant` nodes, casts and
/// transposes of weights. Integers may stand for the batch size, which stays symbolic.
enum ConstantFolding {
    /// Op types this evaluates.
    static let foldable: Set<String> = ["Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Concat", "Gather",
                                        "Slice", "Reshape", "Transpose", "Mul", "Add", "Sub", "Div", "Sqrt", "Neg"]

    /// The outputs of `node` from its known inputs (nil: an absent optional input).
    static func fold(_ node: GraphIR.Node, _ inputs: [Constant?], opset: Int, fail: (String) -> ImportError) throws -> Constant {
        func input(_ i: Int) throws -> Constant {
            guard i < inputs.count, let c = inputs[i] else { throw fail("needs input \(i)") }
            return c
        }
        func axesInput(_ i: Int, attribute: String) throws -> [Int]? {
            if i < inputs.count, let c = inputs[i] {
                guard let v = c.ints else { throw fail("its axes must be known integers") }
                return v
            }
            if case .ints(let v)? = node.attributes[attribute] { return v }
            return nil
        }
        switch node.opType {
        case "Constant":
            if case .tensor(let t)? = node.attributes["value"] { return t }
            if case .float(let f)? = node.attributes["value_float"] { return Constant(dims: [], values: .floats([f])) }
            if case .int(let i)? = node.attributes["value_int"] { return Constant(dims: [], values: .ints([.known(i)])) }
            if case .floats(let f)? = node.attributes["value_floats"] { return Constant(dims: [f.count], values: .floats(f)) }
            if case .ints(let i)? = node.attributes["value_ints"] { return Constant(dims: [i.count], values: .ints(i.map(Constant.Dim.known))) }
            throw fail("a Constant needs a 'value' tensor, float or int (others are not supported)")
        case "Identity": return try input(0)
        case "Cast":
            let x = try input(0)
            guard case .int(let to)? = node.attributes["to"] else { throw fail("needs attribute 'to'") }
            switch to {
            case 1, 10, 11, 16: guard let f = x.floats else { throw fail("cannot cast the batch size to a float") }
                return Constant(dims: x.dims, values: .floats(f))
            case 6, 7, 2, 3, 4, 5, 12, 13:
                guard let d = x.dimValues else { throw fail("casts a float that is not a whole number to an integer") }
                return Constant(dims: x.dims, values: .ints(d))
            default: throw fail("cast to data type \(to) is not supported")
            }
        case "Unsqueeze", "Squeeze":
            let x = try input(0)
            let axes = try axesInput(1, attribute: "axes")
            var dims = x.dims
            if node.opType == "Unsqueeze" {
                guard let axes else { throw fail("needs axes") }
                let rank = dims.count + axes.count
                for a in axes.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
                    guard a >= 0, a <= dims.count else { throw fail("axis out of range") }
                    dims.insert(1, at: a)
                }
            } else {
                let rank = dims.count
                let drop = Set((axes ?? dims.indices.filter { dims[$0] == 1 }).map { $0 < 0 ? $0 + rank : $0 })
                guard drop.allSatisfy({ $0 >= 0 && $0 < rank && dims[$0] == 1 }) else { throw fail("squeezes an axis that is not 1") }
                dims = dims.indices.filter { !drop.contains($0) }.map { dims[$0] }
            }
            return Constant(dims: dims, values: x.values)
        case "Concat":
            let parts = try (0..<inputs.count).map { try input($0) }
            guard parts.allSatisfy({ $0.dims.count == 1 }) else { throw fail("only 1-D constants are concatenated at import") }
            if parts.allSatisfy({ if case .floats = $0.values { return true } else { return false } }) {
                let f = parts.flatMap { $0.floats! }
                return Constant(dims: [f.count], values: .floats(f))
            }
            guard let d = parts.map(\.dimValues).reduce([Constant.Dim](), { acc, v in v.map { (acc ?? []) + $0 } }) else {
                throw fail("mixes floats and integers")
            }
            return Constant(dims: [d.count], values: .ints(d))
        case "Gather":
            let x = try input(0), idx = try input(1)
            let axis = { if case .int(let a)? = node.attributes["axis"] { return a } else { return 0 } }()
            guard x.dims.count == 1, axis == 0 || axis == -1, let indices = idx.ints else {
                throw fail("only gathers from a 1-D constant with known indices are folded")
            }
            let n = x.dims[0]
            var picked: [Int] = []
            for i in indices {
                let j = i < 0 ? i + n : i
                guard j >= 0, j < n else { throw fail("index \(i) is out of range for \(n) values") }
                picked.append(j)
            }
            let values: Constant.Values
            switch x.values {
            case .floats(let f): values = .floats(picked.map { f[$0] })
            case .ints(let d): values = .ints(picked.map { d[$0] })
            }
            return Constant(dims: idx.dims, values: values)
        case "Slice":
            let x = try input(0)
            guard x.dims.count == 1, let starts = try input(1).ints, let ends = try input(2).ints, starts.count == 1, ends.count == 1 else {
                throw fail("only slices of a 1-D constant are folded")
            }
            let steps = inputs.count > 4 ? inputs[4]?.ints ?? [1] : [1]
            guard steps == [1] else { throw fail("only slices with step 1 are folded") }
            let n = x.dims[0]
            let clamp = { (v: Int) in Swift.max(0, Swift.min(n, v < 0 ? v + n : v)) }
            let r = clamp(starts[0])..<Swift.max(clamp(starts[0]), clamp(ends[0]))
            switch x.values {
            case .floats(let f): return Constant(dims: [r.count], values: .floats(Array(f[r])))
            case .ints(let d): return Constant(dims: [r.count], values: .ints(Array(d[r])))
            }
        case "Reshape":
            let x = try input(0)
            guard let shape = try input(1).ints else { throw fail("its shape must be known") }
            var dims = shape.enumerated().map { $0.element == 0 && $0.offset < x.dims.count ? x.dims[$0.offset] : $0.element }
            guard dims.allSatisfy({ $0 >= -1 && $0 <= x.count }), dims.filter({ $0 == -1 }).count <= 1 else {
                throw fail("cannot reshape \(x.dims) to \(shape)")
            }
            if let m = dims.firstIndex(of: -1) {
                let rest = ModelLimits.elementCount(dims.enumerated().filter { $0.offset != m }.map(\.element))
                guard let rest, rest > 0, x.count % rest == 0 else { throw fail("cannot reshape \(x.dims) to \(shape)") }
                dims[m] = x.count / rest
            }
            guard ModelLimits.elementCount(dims) == x.count else { throw fail("cannot reshape \(x.dims) to \(shape)") }
            return Constant(dims: dims, values: x.values)
        case "Transpose":
            let x = try input(0)
            guard x.dims.count == 2, let f = x.floats else { throw fail("only 2-D float constants are transposed at import") }
            if case .ints(let p)? = node.attributes["perm"], p != [1, 0] { throw fail("only perm [1, 0] is supported") }
            let t = transposed(Tensor(shape: x.dims, data: f))
            return Constant(dims: t.shape, values: .floats(t.data))
        case "Mul", "Add", "Sub", "Div":
            return try arithmetic(node.opType, try input(0), try input(1), fail: fail)
        case "Sqrt", "Neg":
            let x = try input(0)
            guard let f = x.floats else { throw fail("needs known values") }
            return Constant(dims: x.dims, values: .floats(node.opType == "Sqrt" ? f.map { $0.squareRoot() } : f.map { -$0 }))
        default:
            throw fail("cannot be evaluated at import")
        }
    }

    /// Elementwise a ∘ b for equal shapes or a scalar side. Integers stay integers (the batch size
    /// times 1 or plus 0 stays the batch size); anything else with the batch size is refused.
    private static func arithmetic(_ op: String, _ a: Constant, _ b: Constant, fail: (String) -> ImportError) throws -> Constant {
        let n = Swift.max(a.count, b.count)
        guard a.count > 0, b.count > 0, a.count == b.count || a.count == 1 || b.count == 1 else {
            throw fail("operands of \(a.dims) and \(b.dims) do not broadcast")
        }
        let dims = a.count >= b.count ? a.dims : b.dims
        if case .ints(let x) = a.values, case .ints(let y) = b.values {
            var out: [Constant.Dim] = []
            for i in 0..<n {
                let u = x[a.count == 1 ? 0 : i], v = y[b.count == 1 ? 0 : i]
                switch (u, v) {
                case (.known(let p), .known(let q)):
                    switch op {
                    case "Mul": out.append(.known(p &* q))
                    case "Add": out.append(.known(p &+ q))
                    case "Sub": out.append(.known(p &- q))
                    default:
                        guard q != 0, !(p == Int.min && q == -1) else { throw fail("division by zero or overflow") }
                        out.append(.known(p / q))
                    }
                case (.batch, .known(let q)) where (op == "Mul" || op == "Div") && q == 1 || (op == "Add" || op == "Sub") && q == 0:
                    out.append(.batch)
                case (.known(let p), .batch) where op == "Mul" && p == 1 || op == "Add" && p == 0:
                    out.append(.batch)
                default: throw fail("arithmetic on the batch size is not supported")
                }
            }
            return Constant(dims: dims, values: .ints(out))
        }
        guard let x = a.floats, let y = b.floats else { throw fail("arithmetic on the batch size is not supported") }
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let u = x[a.count == 1 ? 0 : i], v = y[b.count == 1 ? 0 : i]
            switch op {
            case "Mul": out[i] = u * v
            case "Add": out[i] = u + v
            case "Sub": out[i] = u - v
            default: out[i] = u / v
            }
        }
        return Constant(dims: dims, values: .floats(out))
    }
}
