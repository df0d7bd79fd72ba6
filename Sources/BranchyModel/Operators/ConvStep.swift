import BranchyTensor
import CBranchyKernels

/// A convolution compiled for inference, with the ReLU and max pooling that follow it fused in.
struct ConvStep: CompiledStep {
    /// How the convolution's products run.
    enum Form: Sendable {
        /// Direct: an im2col matrix (or the map in place, for 1×1) times the packed weights.
        case direct(PackedConv2D)
        /// Winograd F(2×2, 3×3), for the geometries ``WinogradConv2D/suits(_:)`` accepts.
        case winograd(WinogradConv2D)
    }

    let form: Form
    let relu: Bool
    let pool: Pool2DGeometry?
    /// Floats of one sample's output (after the pooling, if any).
    let outputCount: Int
    /// Where this convolution's own input buffer starts in a workspace (set when the network is compiled).
    var bufferOffset = 0

    /// Samples run together (im2col layout: their columns side by side in one product).
    let batch: Int
    /// Row length of the batch map and im2col matrix, and the B row offsets for it (direct form).
    let batchRow: Int
    let batchOffsets: [Int32]
    let geometry: Conv2DGeometry

    var mapFloats: Int {
        switch form {
        case .winograd(let w): return w.mapFloats(batch)
        case .direct(let conv): return batch > 1 ? geometry.outC * batchRow : conv.mapFloats
        }
    }
    var bufferFloats: Int {
        switch form {
        case .winograd(let w): return w.bufferFloats(batch)
        case .direct(let conv): return batch > 1 ? conv.batchBufferFloats(batch) : conv.bufferFloats
        }
    }

    init(geometry g: Conv2DGeometry, weight: Tensor, bias: Tensor?, relu: Bool, pool: Pool2DGeometry?, isa: KernelISA, group: Int,
         winograd useWinograd: Bool = true) {
        geometry = g
        self.relu = relu
        self.pool = pool
        outputCount = pool?.outputCount ?? g.outputCount
        // Several samples share one im2col matrix only while it stays small (at most 2^16 floats
        // per sample); larger layers run a sample at a time. Winograd's products take a group
        // while its transformed tiles stay as small. Only the form that runs packs its weights.
        if useWinograd && WinogradConv2D.suits(g) {
            let w = WinogradConv2D(geometry: g, weight: weight.data, bias: bias?.data, isa: isa)
            form = .winograd(w)
            batch = 16 * w.tiles * max(g.inC, g.outC) <= 1 << 16 ? group : 1
            batchRow = 0
            batchOffsets = []
        } else {
            let conv = PackedConv2D(geometry: g, weight: weight.data, bias: bias?.data, isa: isa)
            form = .direct(conv)
            batch = conv.batches && g.patch * g.positions <= 1 << 16 ? group : 1
            batchRow = conv.batchMapStride(batch)
            batchOffsets = batch > 1 ? conv.batchOffsets(ld: batchRow) : []
        }
    }

    /// n ≤ batch samples: x (n × C·H·W) → y (n × outputCount), all in one product.
    func runBatch(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>,
                  map: UnsafeMutablePointer<Float>) {
        switch form {
        case .winograd(let w):
            if pool == nil && w.mapIsCompact {
                w.run(n, x, xStride: geometry.inputCount, buffer: workspace + bufferOffset, map: y, relu: relu)
                return
            }
            w.run(n, x, xStride: geometry.inputCount, buffer: workspace + bufferOffset, map: map, relu: relu)
            for s in 0..<n { w.unpack(map, image: s, pool: pool, into: y + s * outputCount) }
        case .direct(let conv):
            batchOffsets.withUnsafeBufferPointer { o in
                conv.mapBatch(n, x, xStride: geometry.inputCount, buffer: workspace + bufferOffset, map: map, ld: batchRow,
                              offsets: o.baseAddress!, relu: relu)
            }
            for s in 0..<n { conv.unpackBatch(map, ld: batchRow, image: s, pool: pool, into: y + s * outputCount) }
        }
    }

    /// One sample: x (C, H, W) compact → y compact. `map` holds mapFloats.
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>,
             map: UnsafeMutablePointer<Float>) {
        // ReLU before max pooling gives the same values as after it (max commutes with it).
        switch form {
        case .winograd:
            runBatch(1, x, y, workspace: workspace, map: map)
        case .direct(let conv):
            if pool == nil && conv.pointwise {
                conv.mapPointwise(x, buffer: workspace + bufferOffset, into: y, relu: relu)
                return
            }
            conv.map(x, buffer: workspace + bufferOffset, map: map, relu: relu)
            conv.unpack(map, pool: pool, into: y)
        }
    }

    /// Whether the step runs a sample at a time (a convolution too large to share an im2col
    /// matrix), else on a group at once.
    var perSample: Bool { batch == 1 }

    func runSample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace ws: InferenceWorkspace) {
        run(x, y, workspace: ws.buffer(0), map: ws.buffer(1))
    }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        runBatch(n, x, y, workspace: run.workspace.buffer(0), map: run.workspace.buffer(1))
    }
}
