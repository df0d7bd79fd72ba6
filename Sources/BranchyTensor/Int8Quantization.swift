/// Parameters of the per-tensor affine `int8` codec: `x ≈ (q - zeroPoint) * scale`.
///
/// The range `[min, max]` of the finite input values is widened to include zero (so the
/// zero point is always representable) and then
/// `scale = (max - min) / 255` (or `1` when that is zero),
/// `zeroPoint = clamp(round(-128 - min / scale), -128, 127)`. Rounding is to nearest,
/// ties away from zero.
public struct Int8Quantization: Sendable, Hashable {
    /// Step between adjacent quantised levels; finite and positive.
    public var scale: Float
    /// The quantised value that represents (approximately) zero.
    public var zeroPoint: Int8

    /// Creates parameters from explicit values.
    public init(scale: Float, zeroPoint: Int8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// Fits parameters to the finite values in `values` (non-finite values are ignored).
    public init(fitting values: UnsafeBufferPointer<Float>) {
        let (lo, scale) = affineRange(values, levels: 255)
        self.scale = scale
        self.zeroPoint = Int8(Int8Quantization.clampToInt8((-128 - lo / scale).rounded()))
    }

    /// Fits parameters to the finite values in `values`.
    public init(fitting values: [Float]) {
        self = values.withUnsafeBufferPointer { Int8Quantization(fitting: $0) }
    }

    /// Quantises one value: `clamp(round(x / scale) + zeroPoint, -128, 127)`.
    ///
    /// NaN maps to the zero point; ±infinity saturate.
    @inlinable public func quantize(_ x: Float) -> Int8 {
        let r = (x / scale).rounded() + Float(zeroPoint)
        if r.isNaN { return zeroPoint }
        return Int8(Int8Quantization.clampToInt8(r))
    }

    /// Dequantises one value: `(q - zeroPoint) * scale`.
    @inlinable public func dequantize(_ q: Int8) -> Float {
        Float(Int(q) - Int(zeroPoint)) * scale
    }

    @usableFromInline static func clampToInt8(_ r: Float) -> Float {
        min(max(r, -128), 127)
    }
}

/// Parameters of the per-tensor affine `int4` codec: `x ≈ (q - zeroPoint) * scale`, `q` in 0...15.
///
/// As for ``Int8Quantization``, the range of the finite values is widened to include zero; then
/// `scale = (max - min) / 15` (or `1` when that is zero) and
/// `zeroPoint = clamp(round(-min / scale), 0, 15)`.
public struct Int4Quantization: Sendable, Hashable {
    /// Step between adjacent levels; finite and positive.
    public var scale: Float
    /// The level that represents (approximately) zero, 0...15.
    public var zeroPoint: UInt8

    /// Creates parameters from explicit values.
    public init(scale: Float, zeroPoint: UInt8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// Fits parameters to the finite values in `values`.
    public init(fitting values: UnsafeBufferPointer<Float>) {
        let (lo, scale) = affineRange(values, levels: 15)
        self.scale = scale
        self.zeroPoint = UInt8(min(max((-lo / scale).rounded(), 0), 15))
    }

    /// Quantises one value: `clamp(round(x / scale) + zeroPoint, 0, 15)`; NaN maps to the zero point.
    @inlinable public func quantize(_ x: Float) -> UInt8 {
        let r = (x / scale).rounded() + Float(zeroPoint)
        if r.isNaN { return zeroPoint }
        return UInt8(min(max(r, 0), 15))
    }

    /// Dequantises one level: `(q - zeroPoint) * scale`.
    @inlinable public func dequantize(_ q: UInt8) -> Float {
        Float(Int(q) - Int(zeroPoint)) * scale
    }
}

/// The range of the finite values widened to include zero, as its low end and the step that
/// divides it into `levels` steps: `(max - min) / levels`, or 1 when the range is empty. A range
/// so wide that `max - min` overflows falls back to something finite (it cannot be represented
/// well anyway).
@usableFromInline func affineRange(_ values: UnsafeBufferPointer<Float>, levels: Float) -> (lo: Float, scale: Float) {
    var lo: Float = 0
    var hi: Float = 0
    for v in values where v.isFinite {
        if v < lo { lo = v }
        if v > hi { hi = v }
    }
    var scale = (hi - lo) / levels
    if !(scale.isFinite && scale > 0) {
        scale = (scale == 0) ? 1 : (hi / levels - lo / levels)
    }
    return (lo, scale)
}
