import CBranchyKernels

/// A convolution ready to run on one kernel path: weights packed once, and the way B's rows
/// are read decided once.
///
/// With stride 1 the rows of B are shifted views of a zero-bordered copy of the input, so no
/// im2col matrix is written; the output map then has the padded width, and its extra columns
/// are discarded by ``unpack(_:pool:into:)``, which compacts or max-pools the map. Otherwise
/// (or when that layout would waste too many columns) the input goes through im2col.
/// Each output element is `bias + Σ w·x` as one chain of multiply-adds in (channel, row,
/// column) order of the kernel, whatever the batch.
public struct PackedConv2D: Sendable {
    public let geometry: Conv2DGeometry
    public let isa: KernelISA
    /// Stride 1: B rows are shifted views of the zero-bordered input (no im2col copy).
    public let direct: Bool
    public let paddedH: Int, paddedW: Int
    /// Distance between output rows in the map (padded width when direct, outW otherwise).
    public let mapRowStride: Int
    /// Floats per output channel in the map (whole tiles of NR columns, or NR / 2 at the end).
    public let mapStride: Int
    /// Columns of the map that hold output (the rest of `mapStride` is computed and ignored).
    let columns: Int
    let packedWeight: [Float]
    let bias: [Float]?
    let offsets: [Int32]
    /// Floats of the private input buffer (the zero-bordered copy, the im2col matrix, or both).
    public let bufferFloats: Int
    /// Where the im2col matrix starts in the buffer.
    let colOffset: Int

    /// Floats of the output map.
    public var mapFloats: Int { geometry.outC * mapStride }

    /// Packs `weight` (outC, C, kH, kW) and keeps `bias` (outC) for `isa` (a path this CPU
    /// cannot run falls back to the widest it can).
    public init(geometry g: Conv2DGeometry, weight: [Float], bias: [Float]?, isa requested: KernelISA = .active) {
        let isa = requested.isSupported ? requested : .best
        geometry = g
        self.isa = isa
        let nr = isa.nr
        let k = g.patch
        let ph = g.inH + 2 * g.pad, pw = g.inW + 2 * g.pad
        let wideColumns = g.outH == 0 ? 0 : (g.outH - 1) * pw + g.outW
        let directColumns = Int(bk_conv_columns(isa.rawValue, Int32(wideColumns)))
        let imColumns = Int(bk_conv_columns(isa.rawValue, Int32(g.positions)))
        // Cost in cycles, roughly: two vector multiply-adds per cycle, one im2col element per cycle.
        let vw = nr / 2
        let directCost = g.outC * k * (directColumns / vw) / 2
        let imCost = g.outC * k * (imColumns / vw) / 2 + k * g.positions / 4
        let direct = g.stride == 1 && directCost <= imCost
        self.direct = direct
        paddedH = ph; paddedW = pw
        let columns = direct ? wideColumns : g.positions
        self.columns = columns
        let mapStride = direct ? directColumns : imColumns
        self.mapStride = mapStride
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
            // (At least k·NR floats: the scratch panel of ``mapPointwise(_:buffer:into:relu:)``.)
            bufferFloats = max(g.inC * ph * pw, lastOffset + mapStride, k * nr) + nr
            colOffset = 0
        } else if g.stride == 1 {
            // im2col from a zero-bordered copy: the matrix follows the copy.
            colOffset = (g.inC * ph * pw + 15) / 16 * 16
            bufferFloats = colOffset + max(1, k * mapStride)
        } else {
            colOffset = 0
            bufferFloats = max(1, k * mapStride)
        }
        var packed = [Float](repeating: 0, count: bk_pack_a_size(isa.rawValue, Int32(g.outC), Int32(k)))
        weight.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { d in
                bk_pack_a(isa.rawValue, Int32(g.outC), Int32(k), w.baseAddress!, k, 1, d.baseAddress!)
            }
        }
        packedWeight = packed
        self.bias = bias
    }

    /// One image x (C, H, W) → map (outC rows of `mapStride`) = conv + bias, ReLU when asked.
    /// `buffer` (bufferFloats) must be zeroed before its first use and used by this convolution only.
    public func map(_ x: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>, map: UnsafeMutablePointer<Float>, relu: Bool) {
        unfold(x, buffer: buffer, into: buffer + colOffset, ld: mapStride)
        offsets.withUnsafeBufferPointer { multiply(buffer + colOffset, $0.baseAddress!, columns: columns, into: map, ld: mapStride, relu: relu) }
    }

    /// A 1×1 convolution at stride 1 without padding, in the in-place layout: its input is the
    /// product's B as it lies, so ``mapPointwise(_:buffer:into:relu:)`` needs no copy on either side.
    public var pointwise: Bool { direct && geometry.kH == 1 && geometry.kW == 1 && geometry.pad == 0 }

    /// One image x (C, H, W) → y (outC, H, W) compact = conv + bias, ReLU when asked, read and
    /// written in place (``pointwise`` convolutions only). The same bits as ``map(_:buffer:map:relu:)``
    /// then ``unpack(_:pool:into:)``. `buffer` (bufferFloats) is scratch.
    public func mapPointwise(_ x: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, relu: Bool) {
        precondition(pointwise, "only a 1×1 convolution at stride 1 without padding reads its input in place")
        let g = geometry
        packedWeight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointerOrNil { b in
                offsets.withUnsafeBufferPointer { o in
                    bk_conv_rows(isa.rawValue, Int32(g.outC), Int32(g.patch), w.baseAddress!, b, x, o.baseAddress!,
                                 Int32(g.positions), y, g.positions, relu ? 1 : 0, buffer)
                }
            }
        }
    }

    /// Puts one image where the product reads it: the interior of the zero-bordered copy (its
    /// border stays zero: only the interior is ever written), then, in the im2col layout, its
    /// columns of the matrix at `col` (row length `ld`).
    private func unfold(_ x: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>, into col: UnsafeMutablePointer<Float>, ld: Int) {
        let g = geometry
        if direct || g.stride == 1 {
            bk_copy_planes(Int32(g.inC), Int32(g.inH), Int32(g.inW), x, g.inH * g.inW, g.inW,
                           buffer + g.pad * paddedW + g.pad, paddedH * paddedW, paddedW, 0)
        }
        if direct { return }
        if g.stride == 1 {
            bk_im2col_padded(isa.rawValue, Int32(g.inC), Int32(paddedH), Int32(paddedW), Int32(g.kH), Int32(g.kW), Int32(g.outH), Int32(g.outW),
                             buffer, col, ld)
        } else {
            bk_im2col(Int32(g.inC), Int32(g.inH), Int32(g.inW), Int32(g.kH), Int32(g.kW), Int32(g.stride), Int32(g.pad),
                      Int32(g.outH), Int32(g.outW), x, col, ld)
        }
    }

    /// map (outC rows of `ld`) = relu?(bias + W · B) over `columns` columns, B's row p at bbase + offsets[p].
    private func multiply(_ bbase: UnsafePointer<Float>, _ offsets: UnsafePointer<Int32>, columns: Int,
                          into map: UnsafeMutablePointer<Float>, ld: Int, relu: Bool) {
        let g = geometry
        packedWeight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointerOrNil { b in
                bk_conv_tiles(isa.rawValue, Int32(g.outC), Int32(g.patch), w.baseAddress!, b, bbase,
                              offsets, Int32(columns), map, ld, relu ? 1 : 0)
            }
        }
    }

    // MARK: Several images at once (im2col layout only)

    /// Whether several images can share one product: their im2col columns side by side.
    /// Each column's arithmetic is the same as alone, so results do not change.
    public var batches: Bool { !direct }

    /// Floats per output channel in the map of `n` images side by side.
    public func batchMapStride(_ n: Int) -> Int { Int(bk_conv_columns(isa.rawValue, Int32(n * geometry.positions))) }

    /// Floats of the private buffer for `n` images side by side (row length batchMapStride(n)).
    public func batchBufferFloats(_ n: Int) -> Int {
        colOffset + max(1, geometry.patch * batchMapStride(n))
    }

    /// Row offsets of B for batch maps of row length `ld` (row p starts at p·ld), for ``mapBatch``.
    public func batchOffsets(ld: Int) -> [Int32] { (0..<geometry.patch).map { Int32($0 * ld) } }

    /// `n` images x (each C×H×W, `xStride` apart) → map (outC rows of `ld`);
    /// image s owns columns s·outH·outW ..< (s+1)·outH·outW. `buffer` as in ``map(_:buffer:map:relu:)``,
    /// with batchBufferFloats(n) floats; `ld` ≥ batchMapStride(n) is the row length of the matrix and
    /// the map, `offsets` its B row offsets (``batchOffsets(ld:)``).
    public func mapBatch(_ n: Int, _ x: UnsafePointer<Float>, xStride: Int, buffer: UnsafeMutablePointer<Float>,
                         map: UnsafeMutablePointer<Float>, ld: Int, offsets: UnsafePointer<Int32>, relu: Bool) {
        precondition(!direct, "only the im2col layout takes several images")
        precondition(ld >= batchMapStride(n), "row length \(ld) too short for \(n) images")
        let col = buffer + colOffset
        for s in 0..<n { unfold(x + s * xStride, buffer: buffer, into: col + s * geometry.positions, ld: ld) }
        multiply(col, offsets, columns: n * geometry.positions, into: map, ld: ld, relu: relu)
    }

    /// Image `s` of a batch map (row length `ld`) into a compact output (pooled when `pool` is given).
    public func unpackBatch(_ map: UnsafePointer<Float>, ld: Int, image s: Int, pool: Pool2DGeometry?,
                            into y: UnsafeMutablePointer<Float>) {
        unpack(map + s * geometry.positions, channelStride: ld, rowStride: geometry.outW, pool: pool, into: y)
    }

    /// The valid part of a map (from ``map(_:buffer:map:relu:)``) into a compact output: max-pooled
    /// to `pool`'s shape when `pool` is given, else (outC, outH, outW).
    public func unpack(_ map: UnsafePointer<Float>, pool: Pool2DGeometry?, into y: UnsafeMutablePointer<Float>) {
        unpack(map, channelStride: mapStride, rowStride: mapRowStride, pool: pool, into: y)
    }

    private func unpack(_ src: UnsafePointer<Float>, channelStride: Int, rowStride: Int, pool: Pool2DGeometry?,
                        into y: UnsafeMutablePointer<Float>) {
        ConvMap.unpack(src, geometry: geometry, isa: isa, channelStride: channelStride, rowStride: rowStride, pool: pool, into: y)
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's base address, or with nil when there is no array.
    public func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let a): a.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: body(nil)
        }
    }
}
