import BranchyTensor
import CBranchyKernels

/// A `conv` layer with `groups` or `dilation` other than 1 (a depthwise convolution, say):
/// computed directly by ``GroupedConv2D``, with a `relu` that follows fused in compiled
/// inference (a batch norm after it is folded in only by the import, not at compile time).
final class GroupedConvLayer: Layer {
    let geometry: GroupedConv2DGeometry
    let weight: Parameter
    let bias: Parameter?
    private var cachedInput: Tensor?

    init(prefix: String, geometry g: GroupedConv2DGeometry, hasBias: Bool) {
        geometry = g
        weight = Parameter(name: prefix + ".weight", value: Tensor(shape: g.weightShape))
        bias = hasBias ? Parameter(name: prefix + ".bias", value: Tensor(shape: [g.outC])) : nil
        super.init(inputShape: [g.inC, g.inH, g.inW], outputShape: [g.outC, g.outH, g.outW])
    }

    /// The plan of a `conv` description with `groups` or `dilation` (already read by ``ConvLayer``).
    static func plan(_ c: LayerContext, kernel k: Int, stride s: Int, pad p: Int, groups: Int, dilation: Int) throws -> LayerPlan {
        let (channels, height, width) = try c.image()
        let out = try c.need(c.spec.out, "out")
        guard channels % groups == 0 else {
            throw c.fail(at: "groups", "\(groups) groups do not divide the input's \(channels) channels")
        }
        guard out % groups == 0 else { throw c.fail(at: "groups", "\(groups) groups do not divide 'out' \(out)") }
        let g = GroupedConv2DGeometry(inC: channels, inH: height, inW: width, outC: out, kernel: k, stride: s, pad: p,
                                      dilation: dilation, groups: groups)
        guard g.outH >= 1, g.outW >= 1 else {
            throw c.fail("kernel \(k) with dilation \(dilation) does not fit input \(c.input) with pad \(p)")
        }
        let name = try c.name()
        try c.tensor("weight", g.weightShape)
        let output = [g.outC, g.outH, g.outW]
        try c.feature("output", output)
        let bias = c.spec.bias ?? true
        try c.count(bias ? [g.weightShape, [g.outC]] : [g.weightShape])
        return LayerPlan(output) { GroupedConvLayer(prefix: name, geometry: g, hasBias: bias) }
    }

    override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { cachedInput = x }
        return GroupedConv2D.forward(geometry, x: x, weight: weight.value, bias: bias?.value)
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var db: Tensor? = bias?.grad
        let dx = GroupedConv2D.backward(geometry, x: cachedInput!, weight: weight.value, dy: dy,
                                        dWeight: &weight.grad, dBias: &db, needInputGradient: needInputGradient)
        if let db { bias!.grad = db }
        return dx
    }

    override func clearCache() { cachedInput = nil }

    /// A ``GroupedConvStep`` with the `relu` or `clip` that follows fused in.
    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        var bounds: (low: Float, high: Float)? = nil
        if following.first is ReLULayer { bounds = (0, .infinity) }
        if let clip = following.first as? ClipLayer { bounds = (clip.low, clip.high) }
        let step = GroupedConvStep(geometry: geometry, weight: weight.value.data, bias: bias?.value.data, bounds: bounds, isa: compiler.isa)
        compiler.maxLinearScratch = max(compiler.maxLinearScratch, step.depthwise?.scratchFloats ?? 0)
        return (step, bounds == nil ? 0 : 1)
    }
}

/// Per sample: a grouped convolution, then the ReLU or clip if fused (the same values as the
/// layers apply: a ReLU maps NaN to 0, a clip keeps it).
struct GroupedConvStep: CompiledStep {
    let geometry: GroupedConv2DGeometry
    let weight: [Float]
    let bias: [Float]?
    /// The fused activation's bounds: (0, ∞) a ReLU.
    let bounds: (low: Float, high: Float)?
    let relu: Bool

    /// A depthwise 3×3 convolution's C kernel, which runs instead (its scratch: the workspace's linear scratch).
    let depthwise: PackedDepthwise3x3?
    let isa: KernelISA

    init(geometry: GroupedConv2DGeometry, weight: [Float], bias: [Float]?, bounds: (low: Float, high: Float)?, isa: KernelISA) {
        self.geometry = geometry; self.weight = weight; self.bias = bias; self.bounds = bounds; self.isa = isa
        relu = bounds.map { $0.low == 0 && $0.high == .infinity } ?? false
        depthwise = PackedDepthwise3x3.applies(to: geometry) ? PackedDepthwise3x3(geometry: geometry, weight: weight, bias: bias) : nil
    }

    var outputCount: Int { geometry.outputCount }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        if let depthwise {
            depthwise.run(x, y, scratch: workspace.buffer(2), isa: isa)
        } else {
            weight.withUnsafeBufferPointer { w in
                if let bias {
                    bias.withUnsafeBufferPointer { GroupedConv2D.forward(geometry, x, weight: w.baseAddress!, bias: $0.baseAddress, y) }
                } else {
                    GroupedConv2D.forward(geometry, x, weight: w.baseAddress!, bias: nil, y)
                }
            }
        }
        if relu {
            for i in 0..<outputCount where !(y[i] > 0) { y[i] = 0 }
        } else if let (low, high) = bounds {
            bk_clip(isa.rawValue, outputCount, y, y, low, high)
        }
    }
}

extension LayerSpec {
    /// A grouped `conv` layer with a bias (groups = channels: depthwise).
    public static func groupedConv(_ name: String, out: Int, kernel: Int, groups: Int, stride: Int = 1, pad: Int = 0,
                                   dilation: Int = 1) -> LayerSpec {
        LayerSpec(op: "conv", name: name, out: out, kernel: kernel, stride: stride == 1 ? nil : stride, pad: pad,
                  groups: groups, dilation: dilation == 1 ? nil : dilation)
    }
}
