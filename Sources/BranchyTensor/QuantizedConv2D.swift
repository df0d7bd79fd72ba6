import CBranchyKernels

/// The instruction set an int8 kernel path is written for.
///
/// Every path computes the same exact integer sums and the same float epilogue, so all give
/// the same bits. ``active`` is the widest the CPU supports unless `BRANCHY_QISA` (`baseline`,
/// `avx2`, `avx512-vnni`) names a narrower one.
public enum QuantizedISA: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case baseline = 0
    case avx2 = 1
    /// AVX-512 VNNI (`vpdpbusd`).
    case vnni = 2

    /// Whether this CPU can run the path.
    public var isSupported: Bool { bk_qisa_supported(rawValue) != 0 }
    /// The widest path this CPU can run.
    public static var best: QuantizedISA { QuantizedISA(rawValue: bk_qisa_best()) ?? .baseline }
    /// Every path this CPU can run, narrowest first.
    public static var supported: [QuantizedISA] { allCases.filter(\.isSupported) }
    public var description: String { String(cString: bk_qisa_name(rawValue)) }

    /// Parses `baseline`, `avx2` or `avx512-vnni`.
    public init?(name: String) {
        guard let q = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = q
    }

    /// The path int8 convolutions use: the widest supported, or `BRANCHY_QISA` when it names a supported one.
    public static var active: QuantizedISA {
        if let raw = getenv("BRANCHY_QISA"), let q = QuantizedISA(name: String(cString: raw)), q.isSupported { return q }
        return best
    }
}

/// How a tensor's floats map onto bytes: `x ≈ scale · (q − zeroPoint)`, q in 0...255.
public struct ActivationQuantization: Codable, Sendable, Hashable {
    public var scale: Float
    public var zeroPoint: Int

    public init(scale: Float, zeroPoint: Int) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// The quantization covering [lo, hi] (widened to include 0, so that 0 is exact and the zero
    /// border of a convolution is the zero point).
    /// A span below ``minimumSpan`` (or not finite) gets the scale 1: its reciprocal, which the
    /// quantization multiplies by, must stay finite.
    public init(min lo: Float, max hi: Float) {
        let lo = Swift.min(lo.isFinite ? lo : 0, 0), hi = Swift.max(hi.isFinite ? hi : 0, 0)
        let span = hi - lo
        scale = span >= Self.minimumSpan && span.isFinite ? span / 255 : 1
        zeroPoint = Int(Swift.min(255, Swift.max(0, (-lo / scale).rounded())))
    }

    /// The narrowest range quantized over its own span (narrower ones use the scale 1).
    public static let minimumSpan: Float = 1e-30
}

/// A convolution run in int8: the input quantized to unsigned bytes with one scale, the
/// weights to signed bytes with one scale per output channel (symmetric, ±127), products
/// summed exactly in 32 bits, the result scaled back to floats and the bias added.
///
/// Samples run together: their columns lie side by side in one product.
public struct QuantizedConv2D: Sendable {
    public let geometry: Conv2DGeometry
    public let qisa: QuantizedISA
    public let input: ActivationQuantization
    /// The per-output-channel weight scales.
    public let weightScales: [Float]
    let channelGroups: Int, groups: Int
    let paddedH: Int, paddedW: Int
    let packed: [Int8]
    let correction: [Int32]
    let scale: [Float]
    let bias: [Float]

    /// Quantizes `weight` (outC, C, kH, kW) per output channel and packs it for `qisa`.
    public init(geometry g: Conv2DGeometry, weight: [Float], bias: [Float]?, input: ActivationQuantization, qisa requested: QuantizedISA = .active) {
        geometry = g
        qisa = requested.isSupported ? requested : .best
        self.input = input
        channelGroups = (g.inC + 3) / 4
        groups = g.kH * g.kW * channelGroups
        paddedH = g.inH + 2 * g.pad
        paddedW = g.inW + 2 * g.pad
        let perRow = g.inC * g.kH * g.kW
        var q = [Int8](repeating: 0, count: weight.count)
        var scales = [Float](repeating: 1, count: g.outC)
        var correction = [Int32](repeating: 0, count: g.outC)
        var scale = [Float](repeating: 0, count: g.outC)
        for o in 0..<g.outC {
            let row = weight[(o * perRow)..<((o + 1) * perRow)]
            let m = row.reduce(Float(0)) { Swift.max($0, abs($1)) }
            let s = m > 0 && m.isFinite ? m / 127 : 1
            scales[o] = s
            var sum: Int32 = 0
            for (i, w) in row.enumerated() {
                let v = Int8(Swift.max(-127, Swift.min(127, (w / s).rounded(.toNearestOrEven))))
                q[o * perRow + i] = v
                sum += Int32(v)
            }
            correction[o] = Int32(input.zeroPoint) * sum
            scale[o] = input.scale * s
        }
        weightScales = scales
        self.correction = correction
        self.scale = scale
        self.bias = bias ?? [Float](repeating: 0, count: g.outC)
        var packed = [Int8](repeating: 0, count: bk_qpack_weights_size(Int32(g.outC), Int32(groups)))
        q.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { d in
                bk_qpack_weights(Int32(g.outC), Int32(g.inC), Int32(g.kH), Int32(g.kW), w.baseAddress!, d.baseAddress!)
            }
        }
        self.packed = packed
    }

    /// 32-bit words of one quantized image (four channels a word).
    var imageWords: Int { channelGroups * paddedH * paddedW }
    /// Samples whose B (im2col words) fits in 48 KiB, the first-level cache it is read from once per
    /// panel of output channels: a batch runs in chunks of this many.
    var chunk: Int { max(1, 49_152 / max(1, groups * geometry.positions * 4)) }
    /// Row stride (words) of B for n samples.
    func ldb(_ n: Int) -> Int { Int(bk_qconv_ldb(Int32(min(n, chunk) * geometry.positions))) }
    /// Floats of scratch (the quantized image and B) for n samples at once.
    public func bufferFloats(_ n: Int) -> Int { (imageWords + 15) / 16 * 16 + groups * ldb(n) }
    /// Floats of the output map for n samples: outC rows of n · positions.
    public func mapFloats(_ n: Int) -> Int { geometry.outC * n * geometry.positions }

    /// n samples x (each `xStride` floats apart, C × H × W) → map: row o holds output channel o of
    /// sample s at columns s · positions ..< (s + 1) · positions (row stride n · positions).
    public func run(_ n: Int, _ x: UnsafePointer<Float>, xStride: Int, buffer: UnsafeMutablePointer<Float>,
                    map: UnsafeMutablePointer<Float>, relu: Bool) {
        let g = geometry
        let image = UnsafeMutableRawPointer(buffer)
        let b = UnsafeMutableRawPointer(buffer + (imageWords + 15) / 16 * 16).assumingMemoryBound(to: UInt32.self)
        let ldb = ldb(n), chunk = chunk
        let inv = 1 / input.scale
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            for s in 0..<count {
                bk_quantize_image(qisa.rawValue, Int32(g.inC), Int32(g.inH), Int32(g.inW), Int32(g.pad), x + (first + s) * xStride, inv,
                                  Int32(input.zeroPoint), image.assumingMemoryBound(to: UInt8.self))
                bk_im2col_words(Int32(channelGroups), Int32(paddedH), Int32(paddedW), Int32(g.kH), Int32(g.kW), Int32(g.stride),
                                Int32(g.outH), Int32(g.outW), image.assumingMemoryBound(to: UInt32.self), b + s * g.positions, ldb)
            }
            packed.withUnsafeBufferPointer { w in
                correction.withUnsafeBufferPointer { c in
                    scale.withUnsafeBufferPointer { sc in
                        bias.withUnsafeBufferPointer { bi in
                            bk_qconv(qisa.rawValue, Int32(g.outC), Int32(groups), w.baseAddress!, b, ldb, Int32(count * g.positions),
                                     c.baseAddress!, sc.baseAddress!, bi.baseAddress!, map + first * g.positions, n * g.positions, relu ? 1 : 0)
                        }
                    }
                }
            }
            first += count
        }
    }

    /// Sample s of a map from ``run(_:_:xStride:buffer:map:relu:)`` on n samples, compacted (or max-pooled
    /// to `pool`'s shape) into y.
    public func unpack(_ map: UnsafePointer<Float>, samples n: Int, image s: Int, pool: Pool2DGeometry?, isa: KernelISA,
                       into y: UnsafeMutablePointer<Float>) {
        ConvMap.unpack(map + s * geometry.positions, geometry: geometry, isa: isa, channelStride: n * geometry.positions,
                       rowStride: geometry.outW, pool: pool, into: y)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
