import BranchyTensor

/// Zero channels around the input's (`padchannels`): `out`, `pad` (out − input channels, the
/// zero channels before the input's): (C, H, W) → (out, H, W) with the input in channels
/// pad ..< pad + C. The zero-padded shortcut of BranchyNet's ResNet blocks.
final class PadChannelsLayer: Layer, Operator {
    static let op = "padchannels"

    let front: Int

    init(inputShape: [Int], out: Int, front: Int) {
        self.front = front
        super.init(inputShape: inputShape, outputShape: [out] + inputShape.dropFirst())
    }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let (channels, height, width) = try c.image()
        let out = try c.need(c.spec.out, "out")
        guard out >= channels else { throw c.fail(at: "out", "\(out) is fewer than the input's \(channels) channels") }
        let front = try c.need(c.spec.pad ?? (out - channels), "pad", min: 0)
        guard front <= out - channels else {
            throw c.fail(at: "pad", "\(front) zero channels in front do not fit: \(channels) channels padded to \(out) leave \(out - channels)")
        }
        let output = [out, height, width]
        try c.feature("output", output)
        let input = c.input
        return LayerPlan(output) { PadChannelsLayer(inputShape: input, out: out, front: front) }
    }

    /// Floats of one sample's input and output.
    var inputCount: Int { inputShape.reduce(1, *) }
    var outputCount: Int { outputShape.reduce(1, *) }
    /// Where the input starts in one sample's output.
    var offset: Int { front * inputShape.dropFirst().reduce(1, *) }

    /// One sample x → y (outputCount floats). Allocates nothing.
    static func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, inputCount: Int, outputCount: Int, offset: Int) {
        y.update(repeating: 0, count: offset)
        (y + offset).update(from: x, count: inputCount)
        (y + offset + inputCount).update(repeating: 0, count: outputCount - offset - inputCount)
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.count / inputCount
        var y = Tensor(shape: [n] + outputShape)
        for s in 0..<n { y.data.replaceSubrange((s * outputCount + offset)..<(s * outputCount + offset + inputCount),
                                                with: x.data[(s * inputCount)..<((s + 1) * inputCount)]) }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let n = dy.count / outputCount
        var dx = Tensor(shape: [n] + inputShape)
        for s in 0..<n { dx.data.replaceSubrange((s * inputCount)..<((s + 1) * inputCount),
                                                 with: dy.data[(s * outputCount + offset)..<(s * outputCount + offset + inputCount)]) }
        return dx
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        (PadChannelsStep(inputCount: inputCount, outputCount: outputCount, offset: offset), 0)
    }
}

/// Per sample: the input's `inputCount` values at `offset` in `outputCount` zeros.
struct PadChannelsStep: CompiledStep {
    let inputCount: Int
    let outputCount: Int
    let offset: Int

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        PadChannelsLayer.run(x, y, inputCount: inputCount, outputCount: outputCount, offset: offset)
    }
}

extension LayerSpec {
    /// A `padchannels` layer, the zero channels in front.
    public static func padChannels(out: Int) -> LayerSpec { LayerSpec(op: "padchannels", out: out) }
}
