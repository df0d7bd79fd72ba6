import BranchyTensor

/// The ONNX form of every operator, as `OPERATORS` in scripts/lib/onnx_operators.py writes it
/// (the same nodes, attributes, initializer names and float32 arithmetic for folded batch norms,
/// binary scales and LRN's alpha). docs/operators.md lists them.
extension ExportGraph {
    /// Appends `layers` from value `x`, naming nodes after `prefix` (`STAGE.trunk`, then
    /// `….3.residual.body` inside blocks). `scope` prefixes the layers' tensor names
    /// (`STAGE.trunk` or `STAGE.exit`, blocks included). The last value is called `lastOutput`
    /// when given (an Identity when there are no layers). Returns the last value's name.
    @discardableResult
    mutating func layers(_ layers: [ExportLayer], _ x: String, prefix: String, scope: String,
                         lastOutput: String? = nil) throws -> String {
        guard !layers.isEmpty else { return lastOutput.map { node("Identity", [x], prefix, output: $0) } ?? x }
        var x = x, i = 0
        while i < layers.count {
            let n = span(layers, i)
            let output = i + n == layers.count ? lastOutput : nil
            x = try emit(layers[i..<(i + n)], x, base: "\(prefix).\(i).\(layers[i].spec.op)", scope: scope, output: output)
            i += n
        }
        return x
    }

    /// How many layers from `layers[i]` one ONNX form takes: 2 for a plain convolution followed
    /// by a batch norm when folding (grouped and dilated ones are not folded, as in
    /// `CompiledNetwork`), else 1.
    private func span(_ layers: [ExportLayer], _ i: Int) -> Int {
        let l = layers[i].spec
        let plain = l.op == "conv" && (l.groups ?? 1) == 1 && (l.dilation ?? 1) == 1
        return foldBatchNorm && plain && i + 1 < layers.count && layers[i + 1].spec.op == "batchnorm" ? 2 : 1
    }

    private mutating func emit(_ group: ArraySlice<ExportLayer>, _ x: String, base: String, scope: String,
                               output: String?) throws -> String {
        let l = group.first!, s = l.spec
        switch s.op {
        case "conv": return try conv(group, x, base, scope, output)
        case "maxpool": return pool("MaxPool", l, x, base, output)
        case "avgpool": return pool("AveragePool", l, x, base, output, extra: ["count_include_pad": .int(0)])
        case "relu": return node("Relu", [x], base, output: output)
        case "flatten": return node("Flatten", [x], base, output: output, ["axis": .int(1)])
        case "linear": return try linear(l, x, base, scope, output)
        case "batchnorm": return try batchNorm(l, x, base, scope, output)
        case "residual":
            let body = try layers(l.nested[0], x, prefix: "\(base).body", scope: scope)
            let shortcut = l.nested[1].isEmpty ? x : try layers(l.nested[1], x, prefix: "\(base).shortcut", scope: scope)
            return node("Add", [body, shortcut], base, output: output)
        case "lrn":
            // ONNX divides alpha by the window size; Branchy's (Chainer's) form does not.
            let size = s.size ?? 5
            return node("LRN", [x], base, output: output, ["size": .int(size), "alpha": .float(Float(Double(s.alpha ?? 1e-4) * Double(size))),
                                                            "beta": .float(s.beta ?? 0.75), "bias": .float(s.k ?? 2)])
        case "padchannels":
            let out = s.out ?? l.output[0], front = s.pad ?? (out - l.input[0])
            let pads = constant("\(base).pads", int64: [0, front, 0, 0, 0, out - l.input[0] - front, 0, 0], dims: [8])
            return node("Pad", [x, pads], base, output: output, ["mode": .string("constant")])
        case "sign": return sign(x, base, output: output)
        case "binlinear": return try binaryLinear(l, x, base, scope, output)
        // ONNX HardSwish (opset 14): x · max(0, min(1, x / 6 + 1 / 2)), Branchy's function with other roundings.
        case "hardswish": return node("HardSwish", [x], base, output: output)
        case "clip":
            // The bounds are inputs (one-element float32 tensors) from opset 11 on; an absent one is the empty name.
            var inputs = [x] + [s.min, s.max].enumerated().map { k, bound in
                bound.map { scalar("\(base).\(k == 0 ? "min" : "max")", $0) } ?? ""
            }
            while inputs.last == "" { inputs.removeLast() }
            return node("Clip", inputs, base, output: output)
        case "leakyrelu": return node("LeakyRelu", [x], base, output: output, ["alpha": .float(s.alpha ?? 0.01)])
        case "sigmoid": return node("Sigmoid", [x], base, output: output)
        case "hardsigmoid":
            return node("HardSigmoid", [x], base, output: output, ["alpha": .float(s.alpha ?? 0.2), "beta": .float(s.beta ?? 0.5)])
        case "globalavgpool": return node("GlobalAveragePool", [x], base, output: output)
        case "branches": return try branches(l, x, base, scope, output)
        default:
            throw ExportError(stage: stage, location: l.location, op: s.op, reason: "this operator has no ONNX export")
        }
    }

    private mutating func conv(_ group: ArraySlice<ExportLayer>, _ x: String, _ base: String, _ scope: String,
                               _ output: String?) throws -> String {
        let l = group.first!, s = l.spec, name = "\(scope).\(s.name ?? "")"
        var weight = try self.weight(name + ".weight", for: l)
        let bias = s.bias ?? true ? try self.weight(name + ".bias", for: l) : nil
        var inputs = [x]
        if group.count == 2 {
            // Folded as CompiledNetwork folds: per output channel w · scale, b · scale + shift.
            let bn = group.last!, bnName = "\(scope).\(bn.spec.name ?? "")"
            let (scale, shift) = BatchNorm.affine(mean: try self.weight(bnName + ".running_mean", for: bn),
                                                  variance: try self.weight(bnName + ".running_var", for: bn),
                                                  gamma: try self.weight(bnName + ".weight", for: bn),
                                                  beta: try self.weight(bnName + ".bias", for: bn), epsilon: bn.spec.epsilon ?? 1e-5)
            let per = weight.count / scale.count
            var folded = Tensor(shape: [scale.count])
            for o in 0..<scale.count {
                for k in (o * per)..<((o + 1) * per) { weight.data[k] *= scale[o] }
                folded.data[o] = (bias?.data[o] ?? 0) * scale[o] + shift[o]
            }
            inputs += [constant("\(name).weight+\(bnName)", weight.data, dims: weight.shape),
                       constant("\(name).bias+\(bnName)", folded.data, dims: folded.shape)]
        } else {
            inputs.append(constant(name + ".weight", weight.data, dims: weight.shape))
            if let bias { inputs.append(constant(name + ".bias", bias.data, dims: bias.shape)) }
        }
        let k = s.kernel ?? 1, stride = s.stride ?? 1, p = s.pad ?? 0, groups = s.groups ?? 1, dilation = s.dilation ?? 1
        var attributes: [String: Attribute] = ["kernel_shape": .ints([k, k]), "strides": .ints([stride, stride]), "pads": .ints([p, p, p, p])]
        // `group` and `dilations` only when not 1, as the script writes them.
        if groups != 1 { attributes["group"] = .int(groups) }
        if dilation != 1 { attributes["dilations"] = .ints([dilation, dilation]) }
        return node("Conv", inputs, base, output: output, attributes)
    }

    /// Floor mode with the bottom and right padding that gives exactly Branchy's output size
    /// (ceil mode included), so that no runtime's ceil rules matter. Both ONNX's pools and
    /// Branchy's clip windows to the input, so the padding never enters a result.
    private mutating func pool(_ op: String, _ l: ExportLayer, _ x: String, _ base: String, _ output: String?,
                               extra: [String: Attribute] = [:]) -> String {
        let k = l.spec.kernel ?? 1, s = l.spec.stride ?? k, p = l.spec.pad ?? 0
        let endH = Swift.max(0, (l.output[1] - 1) * s + k - l.input[1] - p)
        let endW = Swift.max(0, (l.output[2] - 1) * s + k - l.input[2] - p)
        let attributes = extra.merging(["kernel_shape": .ints([k, k]), "strides": .ints([s, s]), "pads": .ints([p, p, endH, endW])]) { a, _ in a }
        return node(op, [x], base, output: output, attributes)
    }

    private mutating func linear(_ l: ExportLayer, _ x: String, _ base: String, _ scope: String, _ output: String?) throws -> String {
        let name = "\(scope).\(l.spec.name ?? "")"
        let w = try weight(name + ".weight", for: l)
        var inputs = [x, constant(name + ".weight", w.data, dims: w.shape)]
        if l.spec.bias ?? true {
            let b = try weight(name + ".bias", for: l)
            inputs.append(constant(name + ".bias", b.data, dims: b.shape))
        }
        return node("Gemm", inputs, base, output: output, ["transB": .int(1)])
    }

    /// α[o] · dot(sign(x), sign(W[o])) + b[o], as BinaryLinear computes it: the dot of two ±1
    /// vectors is an exact integer in float32, then one rounding for α and one for b.
    private mutating func binaryLinear(_ l: ExportLayer, _ x: String, _ base: String, _ scope: String, _ output: String?) throws -> String {
        let name = "\(scope).\(l.spec.name ?? "")"
        let w = try weight(name + ".weight", for: l)
        let hasBias = l.spec.bias ?? true
        let signs = constant(name + ".weight.sign", w.data.map(Sign.value), dims: w.shape)
        let dot = node("Gemm", [sign(x, base), signs], base, ["transB": .int(1)])
        let alpha = constant(name + ".alpha", BinaryLinear.scales(weight: w), dims: [w.shape[0]])
        let scaled = node("Mul", [dot, alpha], base, output: hasBias ? nil : output)
        guard hasBias else { return scaled }
        let b = try weight(name + ".bias", for: l)
        return node("Add", [scaled, constant(name + ".bias", b.data, dims: b.shape)], base, output: output)
    }

    private mutating func batchNorm(_ l: ExportLayer, _ x: String, _ base: String, _ scope: String, _ output: String?) throws -> String {
        let name = "\(scope).\(l.spec.name ?? "")"
        let inputs = try [x] + ["weight", "bias", "running_mean", "running_var"].map { suffix in
            let t = try weight("\(name).\(suffix)", for: l)
            return constant("\(name).\(suffix)", t.data, dims: t.shape)
        }
        return node("BatchNormalization", inputs, base, output: output, ["epsilon": .float(l.spec.epsilon ?? 1e-5)])
    }

    /// Add and Mul fold left, branch by branch, ((b0 + b1) + b2), as BranchesLayer does; Concat on channels.
    private mutating func branches(_ l: ExportLayer, _ x: String, _ base: String, _ scope: String, _ output: String?) throws -> String {
        var ys: [String] = []
        for (j, branch) in l.nested.enumerated() { ys.append(try layers(branch, x, prefix: "\(base).\(j)", scope: scope)) }
        switch l.spec.merge {
        case "concat": return node("Concat", ys, base, output: output, ["axis": .int(1)])
        case "add", "mul":
            var y = ys[0]
            for j in 1..<ys.count {
                y = node(l.spec.merge == "add" ? "Add" : "Mul", [y, ys[j]], base, output: j == ys.count - 1 ? output : nil)
            }
            return y
        default:
            throw ExportError(stage: stage, location: l.location, op: l.spec.op, reason: "unknown merge '\(l.spec.merge ?? "")'")
        }
    }
}
