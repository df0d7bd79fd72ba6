import BranchyModel
import BranchyTensor

/// Turns a checked graph into ``ActivationOp``s: folds what is constant, absorbs batch norms
/// into the convolution before them and constant additions into the bias before them, drops
/// no-ops, maps each remaining node to a Branchy layer or merge, and infers every shape.
struct Lowering {
    let graph: GraphIR
    let file: String
    private(set) var ops: [ActivationOp] = []
    /// Activation tensor → index in ``ops`` of its producer (absent: the graph input).
    private(set) var producer: [String: Int] = [:]
    /// Shape of one item of each activation tensor.
    private(set) var shapes: [String: [Int]] = [:]
    private var constants: [String: Constant]
    private var alias: [String: String] = [:]
    /// How many node inputs and graph outputs read each tensor.
    private var readers: [String: Int] = [:]

    init(graph: GraphIR, file: String) {
        self.graph = graph
        self.file = file
        constants = graph.initializers
        shapes[graph.input.name] = graph.input.shape
        for node in graph.nodes { for i in node.inputs where !i.isEmpty { readers[i, default: 0] += 1 } }
        for o in graph.outputs { readers[o, default: 0] += 1 }
    }

    /// The tensor a name stands for once no-ops are dropped.
    func resolve(_ name: String) -> String {
        var n = name
        while let a = alias[n] { n = a }
        return n
    }

    mutating func run() throws {
        for index in try graph.dependencyOrder(file: file) { try lower(graph.nodes[index]) }
    }

    private func fail(_ node: GraphIR.Node, _ reason: String) -> ImportError {
        ImportError(file: file, location: graph.location(of: node), reason: reason)
    }

    private mutating func lower(_ node: GraphIR.Node) throws {
        guard node.domain.isEmpty || node.domain == "ai.onnx" else {
            throw fail(node, "operator domain '\(node.domain)' is not supported (only the default ONNX domain)")
        }
        let active = node.inputs.filter { !$0.isEmpty && shapes[resolve($0)] != nil }
        if node.opType == "Shape", let x = active.first {
            // The shape of an activation: the batch size, then its known sizes.
            let shape = [Constant.Dim.batch] + shapes[resolve(x)]!.map(Constant.Dim.known)
            var start = try int(node, "start", 0), end = try int(node, "end", shape.count)
            start = max(0, min(shape.count, start < 0 ? start + shape.count : start))
            end = max(start, min(shape.count, end < 0 ? end + shape.count : end))
            guard let out = node.outputs.first else { throw fail(node, "has no output") }
            constants[out] = Constant(dims: [end - start], values: .ints(Array(shape[start..<end])))
            return
        }
        if active.isEmpty {
            guard ConstantFolding.foldable.contains(node.opType) else {
                throw fail(node, "operator not supported on constants")
            }
            let inputs = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
            let value = try ConstantFolding.fold(node, inputs, opset: graph.opset) { fail(node, $0) }
            guard let out = node.outputs.first else { throw fail(node, "has no output") }
            constants[out] = value
            return
        }
        try lowerActive(node)
    }

    // MARK: - Helpers

    private func constant(_ node: GraphIR.Node, _ i: Int, _ what: String) throws -> Constant {
        guard i < node.inputs.count, !node.inputs[i].isEmpty, let c = constants[node.inputs[i]] else {
            throw fail(node, "its \(what) (input \(i)) must be a constant (an initializer or folded from them)")
        }
        return c
    }

    private func floats(_ node: GraphIR.Node, _ i: Int, _ what: String, dims: [Int]? = nil) throws -> Tensor {
        let c = try constant(node, i, what)
        guard let t = c.tensor else { throw fail(node, "its \(what) must be float values") }
        if let dims, t.shape != dims, t.count == dims.reduce(1, *) { return t.reshaped(dims) }
        if let dims, t.shape != dims { throw fail(node, "its \(what) has shape \(t.shape), expected \(dims)") }
        return t
    }

    private func int(_ node: GraphIR.Node, _ key: String, _ fallback: Int) throws -> Int {
        switch node.attributes[key] {
        case nil: return fallback
        case .int(let v)?: return v
        default: throw fail(node, "attribute '\(key)' must be an integer")
        }
    }

    private func ints(_ node: GraphIR.Node, _ key: String) throws -> [Int]? {
        switch node.attributes[key] {
        case nil: return nil
        case .ints(let v)?: return v
        default: throw fail(node, "attribute '\(key)' must be a list of integers")
        }
    }

    private func float(_ node: GraphIR.Node, _ key: String, _ fallback: Float) throws -> Float {
        switch node.attributes[key] {
        case nil: return fallback
        case .float(let v)?: return v
        default: throw fail(node, "attribute '\(key)' must be a float")
        }
    }

    /// The one activation input's name and shape.
    private func activation(_ node: GraphIR.Node) throws -> (name: String, shape: [Int]) {
        guard let first = node.inputs.first, let shape = shapes[resolve(first)] else {
            throw fail(node, "its first input must depend on the image input")
        }
        let others = node.inputs.dropFirst().filter { !$0.isEmpty && shapes[resolve($0)] != nil }
        guard others.isEmpty else { throw fail(node, "only its first input may depend on the image input") }
        return (resolve(first), shape)
    }

    private mutating func emit(_ node: GraphIR.Node, _ kind: ActivationOp.Kind, inputs: [String], shape: [Int], macs: Int = 0,
                               output: String? = nil) throws {
        let out = output ?? node.outputs.first ?? ""
        guard !out.isEmpty else { throw fail(node, "has no output") }
        for extra in node.outputs.dropFirst() where !extra.isEmpty && (readers[extra] ?? 0) > 0 {
            throw fail(node, "its output '\(extra)' is used, which is not supported (only the first output)")
        }
        guard let count = checkedCount(shape), count <= ModelLimits.maxFeatureElements else {
            throw fail(node, "its output of \(shape) has more than \(ModelLimits.maxFeatureElements) values per sample")
        }
        producer[out] = ops.count
        shapes[out] = shape
        ops.append(ActivationOp(node: node.name, opType: node.opType, kind: kind, inputs: inputs, output: out, shape: shape, macs: macs))
    }

    private mutating func layer(_ node: GraphIR.Node, _ spec: LayerSpec, _ tensors: [(suffix: String, value: Tensor)] = [],
                                input: String, shape: [Int], macs: Int = 0, output: String? = nil) throws {
        try emit(node, .layer(spec, tensors: tensors), inputs: [input], shape: shape, macs: macs, output: output)
    }

    /// Makes `node`'s first output another name of `tensor`.
    private mutating func pass(_ node: GraphIR.Node, _ tensor: String) throws {
        guard let out = node.outputs.first, !out.isEmpty else { throw fail(node, "has no output") }
        for extra in node.outputs.dropFirst() where !extra.isEmpty && (readers[extra] ?? 0) > 0 {
            throw fail(node, "its output '\(extra)' is used, which is not supported (only the first output)")
        }
        alias[out] = tensor
    }

    // MARK: - Operators

    private mutating func lowerActive(_ node: GraphIR.Node) throws {
        switch node.opType {
        case "Conv": try conv(node)
        case "BatchNormalization": try batchNorm(node)
        case "Relu", "Sigmoid", "HardSwish":
            let x = try activation(node)
            let op = ["Relu": "relu", "Sigmoid": "sigmoid", "HardSwish": "hardswish"][node.opType]!
            try layer(node, LayerSpec(op: op), input: x.name, shape: x.shape)
        case "LeakyRelu":
            let x = try activation(node)
            try layer(node, LayerSpec(op: "leakyrelu", alpha: try float(node, "alpha", 0.01)), input: x.name, shape: x.shape)
        case "HardSigmoid":
            let x = try activation(node)
            try layer(node, LayerSpec(op: "hardsigmoid", alpha: try float(node, "alpha", 0.2), beta: try float(node, "beta", 0.5)),
                      input: x.name, shape: x.shape)
        case "Clip": try clip(node)
        case "MaxPool", "AveragePool": try pool(node)
        case "GlobalAveragePool":
            let x = try activation(node)
            guard x.shape.count == 3 else { throw fail(node, "needs a (N, C, H, W) input, got (N, \(x.shape))") }
            try layer(node, .globalAvgPool, input: x.name, shape: [x.shape[0], 1, 1], macs: x.shape.reduce(1, *))
        case "ReduceMean": try reduceMean(node)
        case "Flatten":
            let x = try activation(node)
            let axis = try int(node, "axis", 1)
            guard axis == 1 || axis == -x.shape.count else { throw fail(node, "only axis 1 (keep the batch axis) is supported, got \(axis)") }
            try flatten(node, x)
        case "Reshape": try reshape(node)
        case "Squeeze": try squeeze(node)
        case "Gemm": try gemm(node)
        case "MatMul": try matMul(node)
        case "Add", "Mul", "Concat": try merge(node)
        case "Identity", "Dropout":
            try pass(node, try activation(node).name)
        default:
            throw fail(node, "operator not supported")
        }
    }

    private mutating func flatten(_ node: GraphIR.Node, _ x: (name: String, shape: [Int])) throws {
        if x.shape.count == 1 { return try pass(node, x.name) }
        try layer(node, .flatten, input: x.name, shape: [x.shape.reduce(1, *)])
    }

    /// The equal value of a 2-D attribute pair (kernel, strides, dilations), from 1 to
    /// ``ModelLimits/maxSize``, or an error.
    private func square(_ node: GraphIR.Node, _ key: String, _ fallback: Int) throws -> Int {
        guard let v = try ints(node, key) else { return fallback }
        guard v.count == 2 else { throw fail(node, "'\(key)' must have 2 values (2-D), got \(v)") }
        guard v[0] == v[1] else { throw fail(node, "'\(key)' \(v) differs between height and width, which is not supported") }
        guard v[0] >= 1, v[0] <= ModelLimits.maxSize else { throw fail(node, "'\(key)' \(v[0]) must be from 1 to \(ModelLimits.maxSize)") }
        return v[0]
    }

    /// Equal padding on every side, from `pads` and `auto_pad`.
    private func pad(_ node: GraphIR.Node) throws -> Int {
        let p = try pads(node)
        guard Set(p).count == 1 else { throw fail(node, "asymmetric pads \(p) are not supported (the same on every side only)") }
        return p[0]
    }

    /// The padding [top, left, bottom, right] from `pads` and `auto_pad`, each from 0 to ``ModelLimits/maxSize``.
    private func pads(_ node: GraphIR.Node) throws -> [Int] {
        if case .string(let a)? = node.attributes["auto_pad"], a != "NOTSET", a != "VALID" {
            throw fail(node, "auto_pad '\(a)' is not supported (give explicit 'pads')")
        }
        guard let p = try ints(node, "pads") else { return [0, 0, 0, 0] }
        guard p.count == 4 else { throw fail(node, "'pads' must have 4 values, got \(p)") }
        if let bad = p.first(where: { $0 < 0 || $0 > ModelLimits.maxSize }) { throw fail(node, "pads \(bad) must be from 0 to \(ModelLimits.maxSize)") }
        return p
    }

    private mutating func conv(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        guard x.shape.count == 3 else { throw fail(node, "needs a (N, C, H, W) input, got (N, \(x.shape))") }
        let w = try floats(node, 1, "weight")
        guard w.rank == 4, w.count > 0 else { throw fail(node, "its weight must be 4-D (2-D convolution) and not empty, got \(w.shape)") }
        let kernel = try square(node, "kernel_shape", w.shape[2])
        guard w.shape[2] == w.shape[3] else { throw fail(node, "non-square kernel \(w.shape[2])×\(w.shape[3]) is not supported") }
        guard kernel == w.shape[2] else { throw fail(node, "kernel_shape \(kernel) does not match the weight's \(w.shape)") }
        let stride = try square(node, "strides", 1), dilation = try square(node, "dilations", 1), pad = try pad(node)
        let groups = try int(node, "group", 1)
        guard groups >= 1, groups <= x.shape[0], x.shape[0] % groups == 0, w.shape[1] * groups == x.shape[0], w.shape[0] % groups == 0 else {
            throw fail(node, "weight \(w.shape) with \(groups) groups does not fit \(x.shape[0]) input channels")
        }
        var tensors = [(suffix: "weight", value: w)]
        if node.inputs.count > 2, !node.inputs[2].isEmpty { tensors.append(("bias", try floats(node, 2, "bias", dims: [w.shape[0]]))) }
        let g = GroupedConv2DGeometry(inC: x.shape[0], inH: x.shape[1], inW: x.shape[2], outC: w.shape[0], kernel: kernel,
                                      stride: stride, pad: pad, dilation: dilation, groups: groups)
        guard g.outH >= 1, g.outW >= 1 else { throw fail(node, "the kernel does not fit the input \(x.shape)") }
        guard let outputs = checkedCount([g.outC, g.outH, g.outW]), outputs <= ModelLimits.maxFeatureElements else {
            throw fail(node, "its output of (\(g.outC), \(g.outH), \(g.outW)) has more than \(ModelLimits.maxFeatureElements) values per sample")
        }
        let spec = LayerSpec(op: "conv", out: w.shape[0], kernel: kernel, stride: stride == 1 ? nil : stride, pad: pad,
                             bias: tensors.count == 2, groups: groups == 1 ? nil : groups, dilation: dilation == 1 ? nil : dilation)
        try layer(node, spec, tensors, input: x.name, shape: [g.outC, g.outH, g.outW],
                  macs: outputs &* g.groupInC &* kernel &* kernel)
    }

    private mutating func batchNorm(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        if try int(node, "training_mode", 0) != 0 { throw fail(node, "training_mode 1 is not supported (export in eval mode)") }
        let c = x.shape[0], epsilon = try float(node, "epsilon", 1e-5)
        let scale = try floats(node, 1, "scale", dims: [c]), bias = try floats(node, 2, "bias", dims: [c])
        let mean = try floats(node, 3, "mean", dims: [c]), variance = try floats(node, 4, "variance", dims: [c])
        // Folded into a convolution that only it reads: w' = w · γ/√(σ²+ε), b' = (b − μ) · γ/√(σ²+ε) + β.
        if let p = producer[x.name], readers[x.name] == 1, case .layer(var spec, var tensors) = ops[p].kind, spec.op == "conv" {
            var w = tensors[0].value
            let per = w.count / c
            var b = tensors.count > 1 ? tensors[1].value : Tensor(shape: [c])
            for o in 0..<c {
                let f = Double(scale.data[o]) / (Double(variance.data[o]) + Double(epsilon)).squareRoot()
                for i in 0..<per { w.data[o * per + i] = Float(Double(w.data[o * per + i]) * f) }
                b.data[o] = Float((Double(b.data[o]) - Double(mean.data[o])) * f + Double(bias.data[o]))
            }
            tensors = [("weight", w), ("bias", b)]
            spec.bias = true
            ops[p].kind = .layer(spec, tensors: tensors)
            ops[p].nodes += 1
            return try pass(node, x.name)
        }
        try layer(node, LayerSpec(op: "batchnorm", epsilon: epsilon),
                  [("weight", scale), ("bias", bias), ("running_mean", mean), ("running_var", variance)],
                  input: x.name, shape: x.shape, macs: x.shape.reduce(1, *))
    }

    private mutating func clip(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        func bound(_ i: Int) throws -> Float? {
            guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
            let c = try constant(node, i, i == 1 ? "min" : "max")
            guard let f = c.floats, f.count == 1 else { throw fail(node, "its bounds must be scalar constants") }
            return f[0]
        }
        try layer(node, .clip(min: try bound(1), max: try bound(2)), input: x.name, shape: x.shape)
    }

    private mutating func pool(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        guard x.shape.count == 3 else { throw fail(node, "needs a (N, C, H, W) input, got (N, \(x.shape))") }
        guard try ints(node, "kernel_shape") != nil else { throw fail(node, "needs 'kernel_shape'") }
        let kernel = try square(node, "kernel_shape", 1), stride = try square(node, "strides", 1), padding = try pads(node)
        if try square(node, "dilations", 1) != 1 { throw fail(node, "dilated pooling is not supported") }
        guard let (pad, ceil) = PoolPadding.window(pads: padding, ceilMode: try int(node, "ceil_mode", 0) == 1, kernel: kernel,
                                                   stride: stride, height: x.shape[1], width: x.shape[2]) else {
            throw fail(node, "asymmetric pads \(padding) are not supported (the same on every side, or more at the bottom and right only as a ceil-mode window needs)")
        }
        if node.opType == "AveragePool", padding.contains(where: { $0 > 0 }), try int(node, "count_include_pad", 0) != 0 {
            throw fail(node, "count_include_pad 1 with padding is not supported (padding is not counted)")
        }
        guard pad * 2 <= kernel else { throw fail(node, "pad \(pad) is more than half the kernel \(kernel)") }
        let g = Pool2DGeometry(channels: x.shape[0], inH: x.shape[1], inW: x.shape[2], kernel: kernel, stride: stride, pad: pad, ceilMode: ceil)
        guard g.outH >= 1, g.outW >= 1 else { throw fail(node, "the window does not fit the input \(x.shape)") }
        let spec = LayerSpec(op: node.opType == "MaxPool" ? "maxpool" : "avgpool", kernel: kernel, stride: stride,
                             pad: pad == 0 ? nil : pad, ceil: ceil ? true : nil)
        try layer(node, spec, input: x.name, shape: [g.channels, g.outH, g.outW])
    }

    private mutating func reduceMean(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        var axes = try ints(node, "axes")
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let a = try constant(node, 1, "axes").ints else { throw fail(node, "its axes must be known integers") }
            axes = a
        }
        let rank = x.shape.count + 1
        guard x.shape.count == 3, let axes, Set(axes.map { $0 < 0 ? $0 + rank : $0 }) == [2, 3] else {
            throw fail(node, "only the mean over the spatial axes [2, 3] of a (N, C, H, W) input is supported")
        }
        let keep = try int(node, "keepdims", 1) == 1
        let pooled = keep ? (node.outputs.first ?? "") : (node.outputs.first ?? "") + "#pooled"
        try layer(node, .globalAvgPool, input: x.name, shape: [x.shape[0], 1, 1], macs: x.shape.reduce(1, *), output: pooled)
        if !keep { try layer(node, .flatten, input: pooled, shape: [x.shape[0]]) }
    }

    private mutating func reshape(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        guard let target = try constant(node, 1, "shape").dimValues else { throw fail(node, "its shape must be known integers") }
        let count = x.shape.reduce(1, *)
        func isBatch(_ d: Constant.Dim) -> Bool {
            switch d { case .batch: return true; case .known(let v): return v == 0 || v == -1 || v == 1 }
        }
        if target.count == 2, isBatch(target[0]), target[1] == .known(count) || (target[1] == .known(-1) && target[0] != .known(-1)) {
            return try flatten(node, x)
        }
        if target.count == x.shape.count + 1, isBatch(target[0]), Array(target.dropFirst()) == x.shape.map(Constant.Dim.known) {
            return try pass(node, x.name)
        }
        throw fail(node, "reshaping (N, \(x.shape)) to \(target) is not supported (only flattening to (N, -1))")
    }

    private mutating func squeeze(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        var axes = try ints(node, "axes")
        if node.inputs.count > 1, !node.inputs[1].isEmpty { axes = try constant(node, 1, "axes").ints }
        let rank = x.shape.count + 1
        let drop = Set((axes ?? (1..<rank).filter { x.shape[$0 - 1] == 1 }).map { $0 < 0 ? $0 + rank : $0 })
        guard drop.allSatisfy({ $0 >= 1 && $0 < rank && x.shape[$0 - 1] == 1 }) else {
            throw fail(node, "only axes of size 1 after the batch axis can be squeezed")
        }
        let kept = (1..<rank).filter { !drop.contains($0) }
        guard kept == [1] else { throw fail(node, "only squeezing to (N, C) is supported") }
        try flatten(node, x)
    }

    private mutating func gemm(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        guard x.shape.count == 1 else { throw fail(node, "needs a flat (N, F) input, got (N, \(x.shape)); add a Flatten") }
        if try int(node, "transA", 0) != 0 { throw fail(node, "transA 1 is not supported") }
        var b = try floats(node, 1, "weight")
        guard b.rank == 2 else { throw fail(node, "its weight must be 2-D, got \(b.shape)") }
        if try int(node, "transB", 0) == 0 { b = transposed(b) }
        guard b.shape[1] == x.shape[0] else { throw fail(node, "its weight \(b.shape) does not fit \(x.shape[0]) input features") }
        let alpha = try float(node, "alpha", 1), beta = try float(node, "beta", 1), out = b.shape[0]
        if alpha != 1 { b.data = b.data.map { $0 * alpha } }
        var tensors = [(suffix: "weight", value: b)]
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            let c = try floats(node, 2, "bias")
            guard c.count == out || c.count == 1 else { throw fail(node, "its bias \(c.shape) does not fit \(out) outputs") }
            tensors.append(("bias", Tensor(shape: [out], data: (0..<out).map { c.data[c.count == 1 ? 0 : $0] * beta })))
        }
        try layer(node, LayerSpec(op: "linear", out: out, bias: tensors.count == 2), tensors, input: x.name, shape: [out], macs: b.count)
    }

    private mutating func matMul(_ node: GraphIR.Node) throws {
        let x = try activation(node)
        guard x.shape.count == 1 else { throw fail(node, "needs a flat (N, F) input, got (N, \(x.shape))") }
        let b = try floats(node, 1, "weight")
        guard b.rank == 2, b.shape[0] == x.shape[0] else { throw fail(node, "its weight \(b.shape) does not fit \(x.shape[0]) input features") }
        let w = transposed(b)
        try layer(node, LayerSpec(op: "linear", out: w.shape[0], bias: false), [("weight", w)], input: x.name, shape: [w.shape[0]], macs: w.count)
    }


    private mutating func merge(_ node: GraphIR.Node) throws {
        let active = node.inputs.filter { !$0.isEmpty && shapes[resolve($0)] != nil }.map(resolve)
        if active.count == 1 {
            guard node.opType == "Add" else {
                throw fail(node, "\(node.opType) of an activation and a constant is not supported")
            }
            return try addBias(node, active[0])
        }
        guard active.count == node.inputs.count else { throw fail(node, "mixes activations and constants, which is not supported") }
        let inputShapes = active.map { shapes[$0]! }
        let word = ["Add": "add", "Mul": "mul", "Concat": "concat"][node.opType]!
        if node.opType == "Concat" {
            let axis = try int(node, "axis", 1), rank = inputShapes[0].count + 1
            guard (axis < 0 ? axis + rank : axis) == 1 else { throw fail(node, "only concatenation along axis 1 (channels) is supported") }
        }
        let merge = BranchMerge(rawValue: word)!
        let shape: [Int]
        do {
            shape = try merge.outputShape(inputShapes) { ImportError(file: file, reason: $0) }
        } catch let e as ImportError { throw fail(node, e.reason) }
        try emit(node, .merge(word), inputs: active, shape: shape, macs: node.opType == "Concat" ? 0 : shape.reduce(1, *))
    }

    /// An Add of a constant to the output of a linear layer or convolution that only it reads: its bias.
    private mutating func addBias(_ node: GraphIR.Node, _ x: String) throws {
        guard let constantIndex = node.inputs.firstIndex(where: { !$0.isEmpty && shapes[resolve($0)] == nil }) else {
            throw fail(node, "needs two inputs")
        }
        let c = try floats(node, constantIndex, "addend")
        guard let p = producer[x], readers[x] == 1, case .layer(var spec, var tensors) = ops[p].kind,
              spec.op == "linear" || spec.op == "conv" else {
            throw fail(node, "an Add of a constant is supported only as the bias of the Gemm, MatMul or Conv before it")
        }
        let out = spec.out!
        guard c.count == out || c.count == 1 else { throw fail(node, "its addend \(c.shape) does not fit \(out) channels") }
        var bias = tensors.count > 1 ? tensors[1].value : Tensor(shape: [out])
        for o in 0..<out { bias.data[o] += c.data[c.count == 1 ? 0 : o] }
        tensors = [tensors[0], ("bias", bias)]
        spec.bias = true
        ops[p].kind = .layer(spec, tensors: tensors)
        ops[p].nodes += 1
        try pass(node, x)
    }
}

/// The product of `shape`, or nil when a size is negative or the product overflows.
func checkedCount(_ shape: [Int]) -> Int? {
    shape.contains { $0 < 0 } ? nil : ModelLimits.elementCount(shape)
}

/// A 2-D tensor (r, c) transposed to (c, r): weights given as (in, out) made (out, in).
func transposed(_ t: Tensor) -> Tensor {
    let (r, c) = (t.shape[0], t.shape[1])
    var out = [Float](repeating: 0, count: t.count)
    for i in 0..<r { for j in 0..<c { out[j * r + i] = t.data[i * c + j] } }
    return Tensor(shape: [c, r], data: out)
}
