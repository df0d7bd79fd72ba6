import BranchyTensor

/// 2-D convolution (`conv`): `name`, `out` (channels), `kernel` (square), `stride` (1), `pad`
/// (0, zeros on every side), `bias` (true), `groups` (1) and `dilation` (1), which belong to
/// `conv` alone. Input (C, H, W); weight (out, C / groups, kernel, kernel), PyTorch's layout.
/// A convolution with groups or dilation is a ``GroupedConvLayer``. Compiled inference folds a `batchnorm` that directly follows it into its
/// weights and bias, and fuses a `relu` and a `maxpool` after it, in either order.
final class ConvLayer: Layer, Operator {
    static let op = "conv"
    static let exclusiveKeys = ["groups", "dilation"]

    let geometry: Conv2DGeometry
    let weight: Parameter
    let bias: Parameter?
    private var cachedInput: Tensor?

    init(prefix: String, geometry g: Conv2DGeometry, hasBias: Bool) {
        geometry = g
        weight = Parameter(name: prefix + ".weight", value: Tensor(shape: [g.outC, g.inC, g.kH, g.kW]))
        bias = hasBias ? Parameter(name: prefix + ".bias", value: Tensor(shape: [g.outC])) : nil
        super.init(inputShape: [g.inC, g.inH, g.inW], outputShape: [g.outC, g.outH, g.outW])
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let (channels, height, width) = try c.image()
        let l = c.spec
        let k = try c.need(l.kernel, "kernel"), s = try c.need(l.stride ?? 1, "stride"), p = try c.need(l.pad ?? 0, "pad", min: 0)
        let groups = try c.need(l.groups ?? 1, "groups"), dilation = try c.need(l.dilation ?? 1, "dilation")
        if groups != 1 || dilation != 1 { return try GroupedConvLayer.plan(c, kernel: k, stride: s, pad: p, groups: groups, dilation: dilation) }
        let g = Conv2DGeometry(inC: channels, inH: height, inW: width, outC: try c.need(l.out, "out"), kH: k, kW: k, stride: s, pad: p)
        guard g.outH >= 1, g.outW >= 1 else { throw c.fail("kernel \(k) does not fit input \(c.input) with pad \(p)") }
        let name = try c.name()
        let weight = [g.outC, g.inC, k, k]
        try c.tensor("weight", weight)
        try c.tensor("convolution workspace", [g.inC, k, k, g.outH, g.outW])
        let output = [g.outC, g.outH, g.outW]
        try c.feature("output", output)
        let bias = l.bias ?? true
        try c.count(bias ? [weight, [g.outC]] : [weight])
        return LayerPlan(output) { ConvLayer(prefix: name, geometry: g, hasBias: bias) }
    }

    override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return Conv2D.forward(geometry, x: x, weight: weight.value, bias: bias?.value)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = Conv2D.backward(geometry, x: cachedInput!, weight: weight.value, dy: dy,
                                 dWeight: &weight.grad, dBias: &db, needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx
    }

    override func clearCache() { cachedInput = nil }

    /// A ``ConvStep`` with the batch norm (when the compiler folds), ReLU and max pooling that
    /// follow fused in.
    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        var weight = self.weight.value, bias = self.bias?.value
        var rest = following
        if compiler.foldBatchNorm, let bn = rest.first as? BatchNormLayer {
            let folded = bn.fold(into: weight, bias)
            weight = folded.weight; bias = folded.bias
            rest = rest.dropFirst()
        }
        // Fuse what follows: ReLU and max pooling, in either order (max commutes with ReLU).
        var relu = false, pool: Pool2DGeometry? = nil
        while let next = rest.first {
            if next is ReLULayer, !relu { relu = true; rest = rest.dropFirst(); continue }
            if let p = next as? MaxPoolLayer, pool == nil { pool = p.geometry; rest = rest.dropFirst(); continue }
            break
        }
        let fused = following.count - rest.count
        compiler.maxActivation = max(compiler.maxActivation, pool?.outputCount ?? geometry.outputCount, geometry.outputCount)
        // A convolution of fewer than four input channels stays float32: its int8 form would fill at most
        // a quarter of each 4-byte product group (measured slower than float32 on b-resnet3's first).
        if geometry.inC >= 4, let input = compiler.int8?[quantizationKey] {
            let conv = QuantizedConv2D(geometry: geometry, weight: weight.data, bias: bias?.data, input: input, qisa: compiler.qisa)
            var step = Int8ConvStep(conv: conv, relu: relu, pool: pool, isa: compiler.isa, outputCount: pool?.outputCount ?? geometry.outputCount)
            step.bufferOffset = compiler.convBuffer(geometry: geometry, batch: 1, floats: conv.bufferFloats(1), int8: true)
            compiler.maxMap = max(compiler.maxMap, conv.mapFloats(1))
            compiler.quantizedConvolutions += 1
            return (step, fused)
        }
        var step = ConvStep(geometry: geometry, weight: weight, bias: bias, relu: relu, pool: pool, isa: compiler.isa, group: compiler.isa.mr,
                            winograd: compiler.winograd)
        step.bufferOffset = compiler.convBuffer(geometry: geometry, batch: step.batch, floats: step.bufferFloats)
        compiler.maxMap = max(compiler.maxMap, step.mapFloats)
        if let observer = compiler.observer {
            return (ObservedStep(inner: step, key: quantizationKey, inputCount: geometry.inputCount, observer: observer), fused)
        }
        return (step, fused)
    }
}

extension LayerSpec {
    /// A `conv` layer with a bias.
    public static func conv(_ name: String, out: Int, kernel: Int, stride: Int = 1, pad: Int = 0) -> LayerSpec {
        LayerSpec(op: "conv", name: name, out: out, kernel: kernel, stride: stride == 1 ? nil : stride, pad: pad)
    }
}
