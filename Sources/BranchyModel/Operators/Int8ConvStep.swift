import BranchyTensor

/// A convolution run in int8 (``QuantizedConv2D``), with the ReLU and max pooling that follow
/// fused in: the input is quantized on entry and the output is floats again, so the steps
/// around it are unchanged. Runs on a group of samples at once.
struct Int8ConvStep: CompiledStep {
    let conv: QuantizedConv2D
    let relu: Bool
    let pool: Pool2DGeometry?
    let isa: KernelISA
    let outputCount: Int
    /// Where this convolution's buffer starts in a workspace (set when the network is compiled).
    var bufferOffset = 0

    var perSample: Bool { false }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        // A sample at a time: its im2col words stay in the first-level cache across the panels of
        // output channels, and without pooling the map is the compact output itself (no copy).
        let buffer = run.workspace.buffer(0) + bufferOffset, map = run.workspace.buffer(1)
        for s in 0..<n {
            let out = y + s * outputCount
            if pool == nil {
                conv.run(1, x + s * inCount, xStride: inCount, buffer: buffer, map: out, relu: relu)
            } else {
                conv.run(1, x + s * inCount, xStride: inCount, buffer: buffer, map: map, relu: relu)
                conv.unpack(map, samples: 1, image: 0, pool: pool, isa: isa, into: out)
            }
        }
    }
}

/// A convolution step that first records the range of its input (for ``Int8Calibration``).
struct ObservedStep: CompiledStep {
    let inner: any CompiledStep
    let key: String
    let inputCount: Int
    let observer: ActivationObserver

    var perSample: Bool { inner.perSample }
    var outputCount: Int { inner.outputCount }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: InferenceWorkspace) {
        observer.observe(key, x, count: inputCount)
        inner.runSample(x, y, workspace: workspace)
    }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        for s in 0..<n { observer.observe(key, x + s * inCount, count: inputCount) }
        inner.runGroup(n, x, inCount, y, run)
    }
}
