import BranchyTensor
import CBranchyKernels

/// A convolution compiled for inference, with the ReLU and max pooling that follow it fused in.
struct ConvStep: Sendable {
    let conv: PackedConv2D
    let relu: Bool
    let pool: Pool2DGeometry?
    /// Floats of one sample's output (after the pooling, if any).
    let outputCount: Int
    /// Where this convolution's own input buffer starts in a workspace (set when the network is compiled).
    var bufferOffset = 0

    /// Samples run together (im2col layout: their columns side by side in one product).
    let batch: Int
    /// Row length of the batch map and im2col matrix, and the B row offsets for it.
    let batchRow: Int
    let batchOffsets: [Int32]
    var mapFloats: Int { batch > 1 ? geometry.outC * batchRow : conv.mapFloats }
    var bufferFloats: Int { batch > 1 ? conv.batchBufferFloats(batch) : conv.bufferFloats }
    var geometry: Conv2DGeometry { conv.geometry }

    init(geometry g: Conv2DGeometry, weight: Tensor, bias: Tensor?, relu: Bool, pool: Pool2DGeometry?, isa: KernelISA, group: Int) {
        conv = PackedConv2D(geometry: g, weight: weight.data, bias: bias?.data, isa: isa)
        self.relu = relu
        self.pool = pool
        outputCount = pool?.outputCount ?? g.outputCount
        // Several samples share one im2col matrix only while it stays small (at most 2^16 floats
        // per sample); larger layers run a sample at a time.
        batch = conv.batches && g.patch * g.positions <= 1 << 16 ? group : 1
        batchRow = conv.batchMapStride(batch)
        batchOffsets = batch > 1 ? conv.batchOffsets(ld: batchRow) : []
    }

    /// n ≤ batch samples: x (n × C·H·W) → y (n × outputCount), all in one product.
    func runBatch(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>,
                  map: UnsafeMutablePointer<Float>) {
        batchOffsets.withUnsafeBufferPointer { o in
            conv.mapBatch(n, x, xStride: geometry.inputCount, buffer: workspace + bufferOffset, map: map, ld: batchRow,
                          offsets: o.baseAddress!, relu: relu)
        }
        for s in 0..<n { conv.unpackBatch(map, ld: batchRow, image: s, pool: pool, into: y + s * outputCount) }
    }

    /// One sample: x (C, H, W) compact → y compact. `map` holds mapFloats.
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>,
             map: UnsafeMutablePointer<Float>) {
        // ReLU before max pooling gives the same values as after it (max commutes with it).
        conv.map(x, buffer: workspace + bufferOffset, map: map, relu: relu)
        conv.unpack(map, pool: pool, into: y)
    }
}

/// A fully connected layer compiled for inference: Wᵀ packed in column panels, ReLU fused.
struct LinearStep: Sendable {
    let inputCount: Int
    let outputCount: Int
    let isa: KernelISA
    let packedWeight: [Float]
    let bias: [Float]?
    let relu: Bool

    init(weight: Tensor, bias: Tensor?, relu: Bool, isa: KernelISA) {
        let o = weight.shape[0], k = weight.shape[1]
        outputCount = o
        inputCount = k
        self.isa = isa
        self.relu = relu
        var packed = [Float](repeating: 0, count: bk_pack_b_size(isa.rawValue, Int32(k), Int32(o)))
        weight.data.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { d in
                bk_pack_b(isa.rawValue, Int32(k), Int32(o), w.baseAddress!, 1, k, d.baseAddress!)
            }
        }
        packedWeight = packed
        // Padded to whole column panels, as the kernel reads it.
        self.bias = bias.map { $0.data + [Float](repeating: 0, count: (o + isa.nr - 1) / isa.nr * isa.nr - o) }
    }

    var scratchFloats: Int { bk_linear_scratch_size(isa.rawValue, Int32(isa.mr), Int32(inputCount)) }

    /// n samples: x (n × in) → y (n × out).
    func run(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        packedWeight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointerOrNil { b in
                bk_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                          b, y, outputCount, relu ? 1 : 0, scratch)
            }
        }
    }
}

/// An XNOR-Net binary linear layer compiled for inference: weight signs packed to bits and α
/// computed once; each sample's signs are packed into the workspace scratch and multiplied
/// by XOR and popcount (`bk_xnor_linear`). Gives the same bits as the layer's forward pass.
struct BinaryLinearStep: Sendable {
    let inputCount: Int
    let outputCount: Int
    let isa: KernelISA
    let packedWeight: [UInt64]
    let alpha: [Float]
    let bias: [Float]?

    init(weight: Tensor, bias: Tensor?, isa: KernelISA) {
        outputCount = weight.shape[0]
        inputCount = weight.shape[1]
        self.isa = isa
        packedWeight = BinaryLinear.packWeight(weight)
        alpha = BinaryLinear.scales(weight: weight)
        self.bias = bias?.data
    }

    /// Floats of scratch for `n` samples' packed signs (two per 64-bit word).
    func scratchFloats(_ n: Int) -> Int { 2 * n * bk_sign_words(Int32(inputCount)) }

    /// n samples: x (n × in) → y (n × out). `scratch` holds scratchFloats(n) floats, 8-byte aligned.
    func run(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer) {
        let bits = scratch.assumingMemoryBound(to: UInt64.self)
        packedWeight.withUnsafeBufferPointer { w in
            alpha.withUnsafeBufferPointer { a in
                bias.withUnsafeBufferPointerOrNil { b in
                    bk_xnor_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                                   a.baseAddress!, b, y, outputCount, bits)
                }
            }
        }
    }
}

/// A residual block compiled for inference: its body and shortcut as steps of their own,
/// then the sum, with the ReLU that follows the block fused in.
struct ResidualStep: Sendable {
    let body: [CompiledStep]
    /// Empty: the identity.
    let shortcut: [CompiledStep]
    let outputCount: Int
    let relu: Bool
}

/// One step of a compiled stage.
enum CompiledStep: Sendable {
    /// Per sample.
    case conv(ConvStep)
    /// Per sample: max pooling (and ReLU) not preceded by a convolution.
    case maxPool(Pool2DGeometry, relu: Bool)
    /// Per sample: average pooling.
    case avgPool(Pool2DGeometry)
    /// Per sample: a ReLU on its own.
    case relu(count: Int)
    /// Per sample: y = ±1 by sign (`bk_sign`).
    case sign(count: Int)
    /// Per sample: batch normalisation in inference form, y = x · scale[c] + shift[c] over planes of `plane` values.
    case affine(scale: [Float], shift: [Float], plane: Int)
    /// Per sample: local response normalisation.
    case lrn(LocalResponseNorm)
    /// Per sample: the input's `inputCount` values at `offset` in `outputCount` zeros.
    case padChannels(inputCount: Int, outputCount: Int, offset: Int)
    /// On a group of samples.
    case linear(LinearStep)
    /// On a group of samples.
    case binaryLinear(BinaryLinearStep)
    /// On a group of samples: the body and the shortcut each run as a stage's steps do, one
    /// workspace level deeper.
    case residual(ResidualStep)

    var perSample: Bool {
        switch self {
        case .conv(let c): c.batch == 1
        case .maxPool, .avgPool, .relu, .sign, .affine, .lrn, .padChannels: true
        case .linear, .binaryLinear, .residual: false
        }
    }

    var outputCount: Int {
        switch self {
        case .conv(let c): c.outputCount
        case .maxPool(let p, _), .avgPool(let p): p.outputCount
        case .relu(let count), .sign(let count): count
        case .affine(let scale, _, let plane): scale.count * plane
        case .lrn(let norm): norm.count
        case .padChannels(_, let count, _): count
        case .linear(let l): l.outputCount
        case .binaryLinear(let l): l.outputCount
        case .residual(let r): r.outputCount
        }
    }
}
