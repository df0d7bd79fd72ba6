import CBranchyKernels

/// A 3×3 convolution at stride 1 with a one-pixel zero border, by Winograd F(2×2, 3×3): each
/// 2 × 2 block of outputs takes 16 multiplications per channel pair instead of 36, so the
/// product does 2.25 times less work than the direct convolution.
///
/// The image is cut into ceil(H/2) × ceil(W/2) tiles; each tile's 4 × 4 input patch is
/// transformed (`bk_winograd_input`), the 16 positions each run one product against the
/// transformed weights (`bk_gemm_rows`, weights packed once here), and the 16 results are
/// transformed back into the 2 × 2 outputs (`bk_winograd_output`). The rounding differs from
/// the direct convolution's (a few units in the last place, relative to the size of the
/// products), but a sample's result never depends on the batch it runs in or on the kernel
/// path (AVX2 and AVX-512 give the same bits): the transforms only add, and each product is
/// one chain of multiply-adds per element.
public struct WinogradConv2D: Sendable {
    public let geometry: Conv2DGeometry
    public let isa: KernelISA
    /// Tiles of 2 × 2 outputs down and across one image.
    public let tilesH: Int, tilesW: Int
    /// The 16 transformed weight matrices (C × outC each), packed for `bk_gemm_rows`.
    let packedWeight: [Float]
    let panelFloats: Int
    let bias: [Float]?

    /// Whether `g` can run as Winograd F(2×2, 3×3) and gains by it: a 3×3 kernel at stride 1
    /// with pad 1, and at least 16 input and 16 output channels (with fewer, the transforms
    /// cost more than the multiplications they save).
    public static func suits(_ g: Conv2DGeometry) -> Bool {
        g.kH == 3 && g.kW == 3 && g.stride == 1 && g.pad == 1 && g.inC >= 16 && g.outC >= 16 && g.inH > 0 && g.inW > 0
    }

    /// Tiles per image.
    public var tiles: Int { tilesH * tilesW }
    /// Floats per output channel in one image's map: 2·tilesH rows of 2·tilesW columns.
    public var mapStride: Int { 4 * tiles }
    /// Distance between output rows in the map.
    public var mapRowStride: Int { 2 * tilesW }
    /// Floats of the map of `n` images (image s at s · outC · mapStride).
    public func mapFloats(_ n: Int) -> Int { n * geometry.outC * mapStride }

    /// Transforms and packs `weight` (outC, C, 3, 3) for `isa` (a path this CPU cannot run falls
    /// back to the widest it can) and keeps `bias` (outC).
    public init(geometry g: Conv2DGeometry, weight: [Float], bias: [Float]?, isa requested: KernelISA = .active) {
        precondition(Self.suits(g), "Winograd F(2×2, 3×3) needs a 3×3 kernel at stride 1 and pad 1")
        precondition(weight.count == g.weightCount, "weight holds \(weight.count) values, not \(g.weightCount)")
        let isa = requested.isSupported ? requested : .best
        geometry = g
        self.isa = isa
        tilesH = (g.inH + 1) / 2
        tilesW = (g.inW + 1) / 2
        self.bias = bias
        let c = g.inC, o = g.outC
        // U = G g Gᵀ for each (output, input) channel pair, in double, laid out per position ξ as
        // a C × outC matrix.
        let gm: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var u = [Float](repeating: 0, count: 16 * c * o)
        for oc in 0..<o {
            for ic in 0..<c {
                let base = (oc * c + ic) * 9
                var gg = [Double](repeating: 0, count: 12)  // G g: 4 × 3
                for i in 0..<4 { for kj in 0..<3 {
                    var s = 0.0
                    for ki in 0..<3 { s += gm[i][ki] * Double(weight[base + ki * 3 + kj]) }
                    gg[i * 3 + kj] = s
                } }
                for i in 0..<4 { for j in 0..<4 {
                    var s = 0.0
                    for kj in 0..<3 { s += gg[i * 3 + kj] * gm[j][kj] }
                    u[((i * 4 + j) * c + ic) * o + oc] = Float(s)
                } }
            }
        }
        let panel = bk_pack_b_size(isa.rawValue, Int32(c), Int32(o))
        panelFloats = panel
        var packed = [Float](repeating: 0, count: 16 * panel)
        u.withUnsafeBufferPointer { src in
            packed.withUnsafeMutableBufferPointer { dst in
                for xi in 0..<16 {
                    bk_pack_b(isa.rawValue, Int32(c), Int32(o), src.baseAddress! + xi * c * o, o, 1, dst.baseAddress! + xi * panel)
                }
            }
        }
        packedWeight = packed
    }

    private func layout(_ n: Int) -> (padded: Int, v: Int, m: Int, total: Int) {
        let g = geometry, rows = n * tiles
        func up(_ x: Int) -> Int { (x + 15) / 16 * 16 }
        let padded = up((2 * tilesH + 2) * (2 * tilesW + 2) * g.inC)
        let v = up(16 * rows * g.inC), m = up(16 * rows * g.outC)
        return (padded, v, m, padded + v + m)
    }

    /// Whether the map is the compact output itself (even height and width): then
    /// ``run(_:_:xStride:buffer:map:relu:)`` can write straight into the next layer's input.
    public var mapIsCompact: Bool { 2 * tilesH == geometry.outH && 2 * tilesW == geometry.outW }

    /// Floats of the private buffer for `n` images at once.
    public func bufferFloats(_ n: Int) -> Int { layout(n).total }

    /// `n` images x (each C×H×W, `xStride` apart) → map (``mapFloats(_:)``): image s's output
    /// channel o at map[(s · outC + o) · mapStride], rows ``mapRowStride`` apart, bias added and
    /// ReLU applied when asked. `buffer` holds ``bufferFloats(_:)`` floats; it needs no zeroing.
    public func run(_ n: Int, _ x: UnsafePointer<Float>, xStride: Int, buffer: UnsafeMutablePointer<Float>,
                    map: UnsafeMutablePointer<Float>, relu: Bool) {
        let g = geometry, t = tiles, rows = n * t, l = layout(n)
        let isa = isa.rawValue
        let padded = buffer, v = buffer + l.padded, m = v + l.v
        // Tile by tile: the 16 positions of a tile's C (or outC) values side by side, so position ξ's
        // rows are 16·C apart.
        for s in 0..<n {
            bk_winograd_input(isa, Int32(g.inC), Int32(g.inH), Int32(g.inW), x + s * xStride, padded, v + s * t * 16 * g.inC)
        }
        packedWeight.withUnsafeBufferPointer { w in
            for xi in 0..<16 {
                bk_gemm_rows(isa, Int32(rows), Int32(g.inC), Int32(g.outC), v + xi * g.inC, 16 * g.inC,
                             w.baseAddress! + xi * panelFloats, m + xi * g.outC, 16 * g.outC)
            }
        }
        bias.withUnsafeBufferPointerOrNil { b in
            for s in 0..<n {
                bk_winograd_output(isa, Int32(g.outC), Int32(tilesH), Int32(tilesW), m + s * t * 16 * g.outC, b,
                                   map + s * g.outC * mapStride, mapStride, relu ? 1 : 0)
            }
        }
    }

    /// Image `s` of a map from ``run(_:_:xStride:buffer:map:relu:)`` into a compact output:
    /// max-pooled to `pool`'s shape when `pool` is given, else (outC, outH, outW).
    public func unpack(_ map: UnsafePointer<Float>, image s: Int, pool: Pool2DGeometry?, into y: UnsafeMutablePointer<Float>) {
        ConvMap.unpack(map + s * geometry.outC * mapStride, geometry: geometry, isa: isa,
                       channelStride: mapStride, rowStride: mapRowStride, pool: pool, into: y)
    }
}
