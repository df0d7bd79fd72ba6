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
        // One sample without pooling: the map is already the compact output.
        if n == 1 && pool == nil {
            conv.run(1, x, xStride: inCount, buffer: run.workspace.buffer(0) + bufferOffset, map: y, relu: relu)
            return
        }
        let map = run.workspace.buffer(1)
        conv.run(n, x, xStride: inCount, buffer: run.workspace.buffer(0) + bufferOffset, map: map, relu: relu)
        for s in 0..<n { conv.unpack(map, samples: n, image: s, pool: pool, isa: isa, into: y + s * outputCount) }
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
