import BranchyTensor

/// Turns layers into compiled steps, each layer by its ``Layer/compile(following:with:)``,
/// keeping the sizes the workspaces need.
struct StepCompiler {
    let isa: KernelISA
    let foldBatchNorm: Bool
    /// Whether 3×3 convolutions that suit it run as Winograd F(2×2, 3×3).
    let winograd: Bool
    /// The input quantization of the convolutions that run in int8, by ``ConvLayer/quantizationKey``.
    let int8: [String: ActivationQuantization]?
    /// The int8 kernel path.
    let qisa: QuantizedISA
    /// When set, every float convolution records the range of its input here.
    let observer: ActivationObserver?
    /// Convolutions compiled to int8 so far.
    var quantizedConvolutions = 0
    var maxActivation = 0, maxMap = 0, maxLinearScratch = 0
    /// Floats of the convolutions' input buffers so far; convolutions of one geometry share one.
    var bufferOffset = 0
    var buffers: [ConvBufferKey: Int] = [:]
    /// Workspace levels: 1 + the deepest nesting of residual blocks.
    var levels = 1
    /// The residual nesting of the layers being compiled.
    private(set) var level = 0

    struct ConvBufferKey: Hashable { var geometry: Conv2DGeometry; var batch: Int; var int8: Bool }

    init(isa: KernelISA, foldBatchNorm: Bool, winograd: Bool = true, int8: [String: ActivationQuantization]? = nil,
         qisa: QuantizedISA = .active, observer: ActivationObserver? = nil) {
        self.isa = isa; self.foldBatchNorm = foldBatchNorm; self.winograd = winograd
        self.int8 = int8; self.qisa = qisa; self.observer = observer
    }

    /// The steps of `layers`, which stand `level` residual blocks deep.
    mutating func compile(_ layers: [Layer], level: Int) -> [any CompiledStep] {
        levels = max(levels, level + 1)
        let outer = self.level
        self.level = level
        defer { self.level = outer }
        var steps: [any CompiledStep] = []
        var i = 0
        while i < layers.count {
            let layer = layers[i]
            maxActivation = max(maxActivation, layer.outputShape.reduce(1, *))
            let (step, fused) = layer.compile(following: layers[(i + 1)...], with: &self)
            if let step { steps.append(step) }
            i += 1 + fused
        }
        return steps
    }

    /// Where the input buffer of a convolution of `geometry` run on `batch` samples at once
    /// starts in a workspace (`floats` long). The buffer's contents depend on the geometry only
    /// (the interior of the zero-bordered copy and the im2col matrix are rewritten on every
    /// use, the border stays zero), so convolutions of one geometry, which never run at once,
    /// share it.
    mutating func convBuffer(geometry: Conv2DGeometry, batch: Int, floats: Int, int8: Bool = false) -> Int {
        let key = ConvBufferKey(geometry: geometry, batch: batch, int8: int8)
        if let offset = buffers[key] { return offset }
        let offset = bufferOffset
        buffers[key] = offset
        bufferOffset += (floats + 15) / 16 * 16
        return offset
    }
}
