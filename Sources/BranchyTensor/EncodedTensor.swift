/// A tensor in its wire encoding: shape, codec, quantisation parameters and the element bytes,
/// and, when a lossless compressor was applied, the compressed bytes that are actually sent.
///
/// Values are produced by ``FeatureCodecKind/encode(_:)`` or by a protocol decoder that has
/// already validated them; ``decoded()`` checks again that `bytes.count == kind.dataByteCount(elements:)`
/// and that the parameters match the kind (``inconsistency``), and throws when they do not.
public struct EncodedTensor: Sendable, Hashable {
    /// The codec of `bytes`.
    public var kind: FeatureCodecKind
    /// Extent of each dimension, outermost first.
    public var shape: [Int]
    /// The codec's quantisation parameters.
    public var parameters: CodecParameters
    /// Element data (little-endian where elements span several bytes), uncompressed.
    public var bytes: [UInt8]
    /// The compressor applied to `bytes` on the wire; `.none` when they travel as they are.
    public private(set) var compression: LosslessCompression = .none
    /// What travels on the wire in place of `bytes` when `compression` is not `.none`.
    public private(set) var compressedBytes: [UInt8] = []

    /// Creates an encoded tensor from its parts, uncompressed.
    public init(kind: FeatureCodecKind, shape: [Int], parameters: CodecParameters, bytes: [UInt8]) {
        self.kind = kind
        self.shape = shape
        self.parameters = parameters
        self.bytes = bytes
    }

    /// Creates an encoded tensor of one of the version-1 kinds (`quantization` present for `int8` only).
    public init(kind: FeatureCodecKind, shape: [Int], quantization: Int8Quantization? = nil, bytes: [UInt8]) {
        self.init(kind: kind, shape: shape, parameters: quantization.map { .int8($0) } ?? .none, bytes: bytes)
    }

    /// Creates an encoded tensor that arrived compressed, from its already decompressed bytes.
    public init(kind: FeatureCodecKind, shape: [Int], parameters: CodecParameters, bytes: [UInt8],
                compression: LosslessCompression, compressedBytes: [UInt8]) {
        self.init(kind: kind, shape: shape, parameters: parameters, bytes: bytes)
        self.compression = compressedBytes.isEmpty ? .none : compression
        self.compressedBytes = compressedBytes.isEmpty ? [] : compressedBytes
    }

    /// The `int8` parameters, when the kind is `int8`.
    public var quantization: Int8Quantization? {
        if case .int8(let q) = parameters { return q }
        return nil
    }

    /// Number of elements described by `shape`.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Bytes of element data on the wire: compressed when compressed.
    public var wireDataCount: Int { compression == .none ? bytes.count : compressedBytes.count }

    /// This tensor with its data compressed by `method`, when that makes it smaller; otherwise unchanged
    /// (so compression is used only where it helps, frame by frame).
    ///
    /// - Throws: ``CompressionError/unavailable(_:library:)`` when the compressor's library cannot be loaded.
    public func compressed(with method: LosslessCompression) throws -> EncodedTensor {
        guard method != .none else { return self }
        let packed = try method.compress(bytes)
        guard packed.count < bytes.count else { return self }
        var copy = self
        copy.compression = method
        copy.compressedBytes = packed
        return copy
    }

    /// Why the parts do not describe one tensor (byte count or parameters that do not fit the kind
    /// and shape), or nil when they do.
    public var inconsistency: String? {
        guard shape.allSatisfy({ $0 >= 0 }) else { return "negative dimension in \(shape)" }
        var n = 1
        for d in shape {
            let (product, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { return "shape \(shape) has too many elements" }
            n = product
        }
        guard bytes.count == kind.dataByteCount(elements: n) else {
            return "\(kind) tensor of shape \(shape) needs \(kind.dataByteCount(elements: n)) bytes, has \(bytes.count)"
        }
        switch (kind, parameters) {
        case (.float32, .none), (.float16, .none), (.uint8, .none), (.int8, .int8), (.int8, .none), (.int4, .int4), (.sign, .sign):
            return nil
        case (.int8PerChannel, .int8PerChannel(let qs)):
            // An empty tensor has nothing to decode: any one set of parameters will do.
            guard !qs.isEmpty, n == 0 || shape.first == qs.count else {
                return "int8-channel tensor of shape \(shape) with \(qs.count) channel parameters"
            }
            return nil
        default:
            return "\(kind) tensor with parameters \(parameters)"
        }
    }

    /// A tensor whose parts do not fit together.
    public struct Inconsistent: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Decodes the element bytes back to floats; throws ``Inconsistent`` when ``inconsistency`` finds a problem.
    public func decoded() throws -> Tensor {
        if let problem = inconsistency { throw Inconsistent(description: problem) }
        let n = elementCount
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
                    for i in 0..<n { dst[i] = q.dequantize(Int8(bitPattern: src[i])) }
                case .uint8:
                    for i in 0..<n { dst[i] = Float(src[i]) / 255 }
                case .int8PerChannel:
                    guard case .int8PerChannel(let qs) = parameters else { return }
                    let per = n / qs.count
                    for (c, q) in qs.enumerated() {
                        for i in (c * per)..<((c + 1) * per) { dst[i] = q.dequantize(Int8(bitPattern: src[i])) }
                    }
                case .int4:
                    guard case .int4(let q) = parameters else { return }
                    for i in 0..<n {
                        let b = src[i >> 1]
                        dst[i] = q.dequantize(i & 1 == 0 ? b & 0x0F : b >> 4)
                    }
                case .sign:
                    guard case .sign(let s) = parameters else { return }
                    for i in 0..<n { dst[i] = (src[i >> 3] >> UInt8(i & 7)) & 1 == 1 ? s : -s }
                }
            }
        }
        return Tensor(shape: shape, data: out)
    }
}
