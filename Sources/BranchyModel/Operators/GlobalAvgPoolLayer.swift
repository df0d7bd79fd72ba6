import BranchyTensor

/// Global average pooling (`globalavgpool`), no fields: (C, H, W) → (C, 1, 1), each channel's
/// mean (ONNX `GlobalAveragePool`, and `ReduceMean` over the spatial axes).
final class GlobalAvgPoolLayer: Layer, Operator {
    static let op = "globalavgpool"

    init(inputShape: [Int]) { super.init(inputShape: inputShape, outputShape: [inputShape[0], 1, 1]) }

    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let (channels, _, _) = try c.image()
        let input = c.input
        return LayerPlan([channels, 1, 1]) { GlobalAvgPoolLayer(inputShape: input) }
    }

    private var plane: Int { inputShape[1] * inputShape[2] }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.count / inputShape.reduce(1, *)
        var y = Tensor(shape: [n] + outputShape)
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                for s in 0..<n { GlobalAvgPoolStep.pool(xp.baseAddress! + s * x.itemCount, yp.baseAddress! + s * inputShape[0],
                                                       channels: inputShape[0], plane: plane) }
            }
        }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let n = dy.count / inputShape[0]
        var dx = Tensor(shape: [n] + inputShape)
        let scale = 1 / Float(plane)
        for s in 0..<n {
            for c in 0..<inputShape[0] {
                let v = dy.data[s * inputShape[0] + c] * scale
                let base = (s * inputShape[0] + c) * plane
                for i in 0..<plane { dx.data[base + i] = v }
            }
        }
        return dx
    }

    override func compile(following: ArraySlice<Layer>, with compiler: inout StepCompiler) -> (step: (any CompiledStep)?, fused: Int) {
        (GlobalAvgPoolStep(channels: inputShape[0], plane: plane), 0)
    }
}

/// Per sample: each channel's mean.
struct GlobalAvgPoolStep: CompiledStep {
    let channels: Int, plane: Int

    var outputCount: Int { channels }

    /// Sums each plane in order, then divides by its size, as ONNX Runtime's reference does.
    static func pool(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, channels: Int, plane: Int) {
        for c in 0..<channels {
            var sum: Float = 0
            let p = x + c * plane
            for i in 0..<plane { sum += p[i] }
            y[c] = sum / Float(plane)
        }
    }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        Self.pool(x, y, channels: channels, plane: plane)
    }
}

extension LayerSpec {
    /// A `globalavgpool` layer.
    public static let globalAvgPool = LayerSpec(op: "globalavgpool")
}
