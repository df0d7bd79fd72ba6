/// How an intermediate feature tensor is encoded when it crosses a network link.
///
/// The raw value is the byte written on the wire. Every codec is deterministic: the
/// sender, the receiver and an in-process evaluator that calls ``roundTrip(_:)`` all
/// obtain bit-identical floats for the same input.
public enum FeatureCodecKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE 754 binary32, lossless.
    case float32 = 0
    /// IEEE 754 binary16, round to nearest even; finite values outside ±65504 saturate.
    case float16 = 1
    /// Affine per-tensor 8-bit quantisation, see ``Int8Quantization``.
    case int8 = 2

    /// Parses a codec name: `"float32"`, `"float16"` or `"int8"` (case-insensitive).
    public init?(_ name: String) {
        switch name.lowercased() {
        case "float32": self = .float32
        case "float16": self = .float16
        case "int8": self = .int8
        default: return nil
        }
    }

    /// The canonical name, accepted by ``init(_:)``.
    public var name: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .int8: return "int8"
        }
    }

    public var description: String { name }

    /// Size of one encoded element in bytes.
    @inlinable public var bytesPerElement: Int {
        switch self {
        case .float32: return 4
        case .float16: return 2
        case .int8: return 1
        }
    }

    /// Encodes `tensor` into little-endian element bytes (plus quantisation parameters for `int8`).
    public func encode(_ tensor: Tensor) -> EncodedTensor {
        let n = tensor.data.count
        var bytes = [UInt8](repeating: 0, count: n * bytesPerElement)
        var quantization: Int8Quantization? = nil
        tensor.data.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { dst in
                switch self {
                case .float32:
                    for i in 0..<n {
                        dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: i &* 4, as: UInt32.self)
                    }
                case .float16:
                    for i in 0..<n {
                        let bits = FeatureCodecKind.float16Bits(src[i])
                        dst.storeBytes(of: bits.littleEndian, toByteOffset: i &* 2, as: UInt16.self)
                    }
                case .int8:
                    let q = Int8Quantization(fitting: src)
                    quantization = q
                    for i in 0..<n {
                        dst[i] = UInt8(bitPattern: q.quantize(src[i]))
                    }
                }
            }
        }
        return EncodedTensor(kind: self, shape: tensor.shape, quantization: quantization, bytes: bytes)
    }

    /// Encodes and then decodes `tensor`, returning exactly the floats a receiver would see.
    ///
    /// `float32` is the identity. The result is bit-identical to `encode(tensor).decoded()`
    /// but avoids the intermediate byte array.
    public func roundTrip(_ tensor: Tensor) -> Tensor {
        switch self {
        case .float32:
            return tensor
        case .float16:
            return Tensor(shape: tensor.shape, data: tensor.data.map {
                FeatureCodecKind.float(float16Bits: FeatureCodecKind.float16Bits($0))
            })
        case .int8:
            let q = tensor.data.withUnsafeBufferPointer { Int8Quantization(fitting: $0) }
            return Tensor(shape: tensor.shape, data: tensor.data.map { q.dequantize(q.quantize($0)) })
        }
    }

    /// The binary16 bit pattern of `value`, rounding to nearest even.
    ///
    /// Finite values beyond the largest half (±65504) saturate to it instead of becoming
    /// infinite, so every finite input encodes to a finite half. NaN and ±infinity are kept.
    @inlinable public static func float16Bits(_ value: Float) -> UInt16 {
        let largest = Float(Float16.greatestFiniteMagnitude)
        let v = value.isFinite ? min(max(value, -largest), largest) : value
        return Float16(v).bitPattern
    }

    /// The float value of a binary16 bit pattern (exact: every half is a float).
    @inlinable public static func float(float16Bits bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }
}

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
        var lo: Float = 0
        var hi: Float = 0
        for v in values where v.isFinite {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        var scale = (hi - lo) / 255
        if !(scale.isFinite && scale > 0) {
            // Zero range, or a range so wide that (hi - lo) overflows: fall back to
            // something finite. The overflow case cannot represent the data well anyway.
            scale = (scale == 0) ? 1 : (hi / 255 - lo / 255)
        }
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

/// A tensor in its wire encoding: shape, codec, quantisation parameters and the
/// little-endian element bytes.
///
/// Values are produced by ``FeatureCodecKind/encode(_:)`` or by a protocol decoder that has
/// already validated them; ``decoded()`` assumes `bytes.count == elementCount * kind.bytesPerElement`.
public struct EncodedTensor: Sendable, Hashable {
    /// The codec of `bytes`.
    public var kind: FeatureCodecKind
    /// Extent of each dimension, outermost first.
    public var shape: [Int]
    /// Present exactly when `kind == .int8`.
    public var quantization: Int8Quantization?
    /// Element data, little-endian, `elementCount * kind.bytesPerElement` bytes.
    public var bytes: [UInt8]

    /// Creates an encoded tensor from its parts.
    public init(kind: FeatureCodecKind, shape: [Int], quantization: Int8Quantization? = nil, bytes: [UInt8]) {
        self.kind = kind
        self.shape = shape
        self.quantization = quantization
        self.bytes = bytes
    }

    /// Number of elements described by `shape`.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Decodes the element bytes back to floats.
    public func decoded() -> Tensor {
        let n = elementCount
        precondition(bytes.count == n * kind.bytesPerElement,
                     "\(kind) tensor of shape \(shape) needs \(n * kind.bytesPerElement) bytes, has \(bytes.count)")
        var out = [Float](repeating: 0, count: n)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                switch kind {
                case .float32:
                    for i in 0..<n {
                        let bits = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self))
                        dst[i] = Float(bitPattern: bits)
                    }
                case .float16:
                    for i in 0..<n {
                        let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
                        dst[i] = FeatureCodecKind.float(float16Bits: bits)
                    }
                case .int8:
                    let q = quantization ?? Int8Quantization(scale: 1, zeroPoint: 0)
                    for i in 0..<n {
                        dst[i] = q.dequantize(Int8(bitPattern: src[i]))
                    }
                }
            }
        }
        return Tensor(shape: shape, data: out)
    }
}
