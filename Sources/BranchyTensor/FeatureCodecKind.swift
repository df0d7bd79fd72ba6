/// How an intermediate feature tensor (or a raw input) is encoded when it crosses a network link.
///
/// The raw value is the byte written on the wire. Every codec is deterministic: the sender, the
/// receiver and an in-process evaluator that calls ``roundTrip(_:)`` all obtain bit-identical
/// floats for the same input. Protocol version 1 knows the first three kinds only.
public enum FeatureCodecKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE 754 binary32, lossless.
    case float32 = 0
    /// IEEE 754 binary16, round to nearest even; finite values outside ±65504 saturate.
    case float16 = 1
    /// Affine per-tensor 8-bit quantisation, see ``Int8Quantization``.
    case int8 = 2
    /// 8-bit pixels with the fixed scale 1/255: `q = clamp(round(x · 255), 0, 255)`, `x' = q / 255`.
    /// Lossless for images read from IDX files (whose values are `k / 255`); the raw-offload codec.
    case uint8 = 3
    /// Affine 8-bit quantisation with one ``Int8Quantization`` per channel (the first dimension).
    case int8PerChannel = 4
    /// Affine per-tensor 4-bit quantisation, see ``Int4Quantization``; two values per byte.
    case int4 = 5
    /// 1 bit per value, the sign: `x' = +s` when `x ≥ 0`, else `−s`, with `s` the mean magnitude.
    /// Lossless for features that are exactly ±1 (a sign activation); eight values per byte.
    case sign = 6

    /// The kinds protocol version 1 can carry.
    public static let version1Kinds: Set<FeatureCodecKind> = [.float32, .float16, .int8]

    /// Parses a codec name (case-insensitive): `float32`, `float16`, `int8`, `uint8`,
    /// `int8-channel`, `int4`, `sign` (also `1bit`).
    public init?(_ name: String) {
        switch name.lowercased() {
        case "float32": self = .float32
        case "float16": self = .float16
        case "int8": self = .int8
        case "uint8": self = .uint8
        case "int8-channel": self = .int8PerChannel
        case "int4": self = .int4
        case "sign", "1bit": self = .sign
        default: return nil
        }
    }

    /// The canonical name, accepted by ``init(_:)``.
    public var name: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .int8: return "int8"
        case .uint8: return "uint8"
        case .int8PerChannel: return "int8-channel"
        case .int4: return "int4"
        case .sign: return "sign"
        }
    }

    public var description: String { name }

    /// Bytes of element data for `elements` values (before any lossless compression).
    @inlinable public func dataByteCount(elements n: Int) -> Int {
        switch self {
        case .float32: return 4 * n
        case .float16: return 2 * n
        case .int8, .uint8, .int8PerChannel: return n
        case .int4: return (n + 1) / 2
        case .sign: return (n + 7) / 8
        }
    }

    /// Bytes of quantisation parameters on the wire for a tensor of `shape`.
    @inlinable public func parameterByteCount(shape: [Int]) -> Int {
        switch self {
        case .float32, .float16, .uint8: return 0
        case .int8, .int4: return 5
        case .int8PerChannel: return 5 * (shape.first ?? 1)
        case .sign: return 4
        }
    }

    /// Encodes `tensor` into its element bytes and quantisation parameters.
    public func encode(_ tensor: Tensor) -> EncodedTensor {
        let n = tensor.data.count
        var bytes = [UInt8](repeating: 0, count: dataByteCount(elements: n))
        var parameters = CodecParameters.none
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
                    parameters = .int8(q)
                    for i in 0..<n { dst[i] = UInt8(bitPattern: q.quantize(src[i])) }
                case .uint8:
                    for i in 0..<n { dst[i] = FeatureCodecKind.pixel(src[i]) }
                case .int8PerChannel:
                    let channels = max(1, tensor.shape.first ?? 1)
                    let per = n / channels
                    var qs: [Int8Quantization] = []
                    qs.reserveCapacity(channels)
                    for c in 0..<channels {
                        let slice = UnsafeBufferPointer(rebasing: src[(c * per)..<((c + 1) * per)])
                        let q = Int8Quantization(fitting: slice)
                        qs.append(q)
                        for i in (c * per)..<((c + 1) * per) { dst[i] = UInt8(bitPattern: q.quantize(src[i])) }
                    }
                    parameters = .int8PerChannel(qs)
                case .int4:
                    let q = Int4Quantization(fitting: src)
                    parameters = .int4(q)
                    for i in 0..<n {
                        let v = q.quantize(src[i])
                        dst[i >> 1] |= (i & 1 == 0) ? v : v << 4
                    }
                case .sign:
                    var total: Double = 0
                    for i in 0..<n where src[i].isFinite { total += Double(abs(src[i])) }
                    let scale = Float(n > 0 ? total / Double(n) : 0)
                    parameters = .sign(scale: scale.isFinite ? scale : 0)
                    for i in 0..<n where !(src[i] < 0) {  // x ≥ 0 (and NaN) → 1
                        dst[i >> 3] |= UInt8(1) << UInt8(i & 7)
                    }
                }
            }
        }
        return EncodedTensor(kind: self, shape: tensor.shape, parameters: parameters, bytes: bytes)
    }

    /// Encodes and then decodes `tensor`, returning exactly the floats a receiver would see.
    ///
    /// `float32` is the identity. The result is bit-identical to `encode(tensor).decoded()`.
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
        case .uint8:
            return Tensor(shape: tensor.shape, data: tensor.data.map { Float(FeatureCodecKind.pixel($0)) / 255 })
        case .int8PerChannel, .int4, .sign:
            // Its own encoding always fits together, so decoding cannot fail.
            return (try? encode(tensor).decoded()) ?? tensor
        }
    }

    /// The 8-bit pixel of a value in [0, 1]: `clamp(round(x · 255), 0, 255)`; NaN gives 0.
    @inlinable public static func pixel(_ x: Float) -> UInt8 {
        let r = (x * 255).rounded()
        if !(r > 0) { return 0 }
        return r >= 255 ? 255 : UInt8(r)
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
