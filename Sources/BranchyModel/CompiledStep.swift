import BranchyTensor
import CBranchyKernels

/// A convolution compiled for inference: weights packed once for the kernel path, the
/// input read either in place from a zero-bordered copy (stride 1) or through im2col,
/// with the ReLU and max pooling that follow it fused in.
struct ConvStep: Sendable {
    let geometry: Conv2DGeometry
    let isa: KernelISA
    /// Stride 1: B rows are shifted views of the zero-bordered input (no im2col copy).
    let direct: Bool
    let paddedH: Int, paddedW: Int
    /// Distance between output rows in the map (padded width when direct, outW otherwise).
    let mapRowStride: Int
    let tiles: Int
    /// Floats per output channel in the map: tiles · NR.
    let mapStride: Int
    let packedWeight: [Float]
    let bias: [Float]?
    let offsets: [Int32]
    let relu: Bool
    let pool: Pool2DGeometry?
    /// Workspace floats of this step's own zero-bordered input or im2col buffer.
    let bufferFloats: Int
    /// Where that buffer starts in a workspace (set when the network is compiled).
    var bufferOffset = 0

    /// Floats of one sample's output (after the pooling, if any).
    let outputCount: Int
    var mapFloats: Int { geometry.outC * mapStride }

    init(geometry g: Conv2DGeometry, weight: Tensor, bias: Tensor?, relu: Bool, pool: Pool2DGeometry?, isa: KernelISA) {
        geometry = g
        self.isa = isa
        self.relu = relu
        self.pool = pool
        outputCount = pool?.outputCount ?? g.outputCount
        let nr = isa.nr
        let k = g.patch
        let positions = g.positions
        let imTiles = (positions + nr - 1) / nr
        let ph = g.inH + 2 * g.pad, pw = g.inW + 2 * g.pad
        let wideColumns = g.outH == 0 ? 0 : (g.outH - 1) * pw + g.outW
        let directTiles = (wideColumns + nr - 1) / nr
        direct = g.stride == 1 && directTiles * 4 <= imTiles * 5
        paddedH = ph; paddedW = pw
        tiles = direct ? directTiles : imTiles
        mapStride = tiles * nr
        mapRowStride = direct ? pw : g.outW
        var offs = [Int32](repeating: 0, count: k)
        var p = 0
        for c in 0..<g.inC { for ki in 0..<g.kH { for kj in 0..<g.kW {
            offs[p] = Int32(direct ? c * ph * pw + ki * pw + kj : p * mapStride)
            p += 1
        } } }
        offsets = offs
        if direct {
            let lastOffset = k == 0 ? 0 : Int(offs[k - 1])
            bufferFloats = max(g.inC * ph * pw, lastOffset + mapStride) + nr
        } else {
            bufferFloats = k * mapStride
        }
        var packed = [Float](repeating: 0, count: bk_pack_a_size(isa.rawValue, Int32(g.outC), Int32(k)))
        weight.data.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { d in
                bk_pack_a(isa.rawValue, Int32(g.outC), Int32(k), w.baseAddress!, k, 1, d.baseAddress!)
            }
        }
        packedWeight = packed
        self.bias = bias?.data
    }

    /// One sample: x (C, H, W) compact → y (outputShape) compact. `map` holds mapFloats.
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>,
             map: UnsafeMutablePointer<Float>) {
        let g = geometry
        let buffer = workspace + bufferOffset
        if direct {
            // The border stays zero: only the interior is ever written.
            bk_copy_planes(Int32(g.inC), Int32(g.inH), Int32(g.inW), x, g.inH * g.inW, g.inW,
                           buffer + g.pad * paddedW + g.pad, paddedH * paddedW, paddedW, 0)
        } else {
            bk_im2col(Int32(g.inC), Int32(g.inH), Int32(g.inW), Int32(g.kH), Int32(g.kW), Int32(g.stride), Int32(g.pad),
                      Int32(g.outH), Int32(g.outW), x, buffer, mapStride)
        }
        packedWeight.withUnsafeBufferPointer { w in
            offsets.withUnsafeBufferPointer { o in
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        bk_conv_tiles(isa.rawValue, Int32(g.outC), Int32(g.patch), w.baseAddress!, b.baseAddress!, buffer,
                                      o.baseAddress!, Int32(tiles), map, mapStride, relu ? 1 : 0)
                    }
                } else {
                    bk_conv_tiles(isa.rawValue, Int32(g.outC), Int32(g.patch), w.baseAddress!, nil, buffer,
                                  o.baseAddress!, Int32(tiles), map, mapStride, relu ? 1 : 0)
                }
            }
        }
        if let p = pool {
            bk_maxpool(Int32(g.outC), Int32(g.outH), Int32(g.outW), map, mapStride, mapRowStride,
                       Int32(p.kernel), Int32(p.stride), Int32(p.pad), Int32(p.outH), Int32(p.outW),
                       y, p.outH * p.outW, p.outW, 0)
        } else {
            bk_copy_planes(Int32(g.outC), Int32(g.outH), Int32(g.outW), map, mapStride, mapRowStride,
                           y, g.outH * g.outW, g.outW, 0)
        }
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
            if let bias {
                bias.withUnsafeBufferPointer { b in
                    bk_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                              b.baseAddress!, y, outputCount, relu ? 1 : 0, scratch)
                }
            } else {
                bk_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                          nil, y, outputCount, relu ? 1 : 0, scratch)
            }
        }
    }
}

/// One step of a compiled stage.
enum CompiledStep: Sendable {
    /// Per sample.
    case conv(ConvStep)
    /// Per sample: max pooling (and ReLU) not preceded by a convolution.
    case maxPool(Pool2DGeometry, relu: Bool)
    /// Per sample: a ReLU on its own.
    case relu(count: Int)
    /// On a group of samples.
    case linear(LinearStep)
    /// On a group of samples: a layer without a compiled form, run through its Tensor forward pass.
    case layer(stage: Int, exit: Bool, index: Int, inputShape: [Int], outputShape: [Int])

    var perSample: Bool {
        switch self {
        case .conv, .maxPool, .relu: true
        case .linear, .layer: false
        }
    }

    var outputCount: Int {
        switch self {
        case .conv(let c): c.outputCount
        case .maxPool(let p, _): p.outputCount
        case .relu(let count): count
        case .linear(let l): l.outputCount
        case .layer(_, _, _, _, let shape): shape.reduce(1, *)
        }
    }
}
