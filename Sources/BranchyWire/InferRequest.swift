import BranchyTensor
import NIOCore

/// The payload of `infer`: run the model from `stageIndex` on `features`.
///
/// Layout: sampleID `UInt64`, deadlineMillis `UInt32`, stageIndex `UInt8`, then the
/// encoded tensor: codec `UInt8`, rank `UInt8` (1...6), `rank` dims `UInt32` (each ≥ 1),
/// for `int8` only scale `Float32` and zeroPoint `Int8`, then byteCount `UInt32` and the
/// little-endian element data.
public struct InferRequest: Hashable, Sendable {
    /// Identifies the input sample end to end, for tracing; not used for matching.
    public var sampleID: UInt64
    /// Remaining time budget in milliseconds when the frame was sent; 0 means no deadline.
    public var deadlineMillis: UInt32
    /// The stage the receiver should run next.
    public var stageIndex: UInt8
    /// The input of that stage, in its wire encoding.
    public var features: EncodedTensor

    /// Creates a request from already encoded features.
    public init(sampleID: UInt64, deadlineMillis: UInt32 = 0, stageIndex: UInt8, features: EncodedTensor) {
        self.sampleID = sampleID
        self.deadlineMillis = deadlineMillis
        self.stageIndex = stageIndex
        self.features = features
    }

    /// Creates a request by encoding `tensor` with `codec`.
    public init(sampleID: UInt64, deadlineMillis: UInt32 = 0, stageIndex: UInt8,
                tensor: Tensor, codec: FeatureCodecKind) {
        self.init(sampleID: sampleID, deadlineMillis: deadlineMillis, stageIndex: stageIndex,
                  features: codec.encode(tensor))
    }

    /// The features as floats, via the codec's dequantisation: bit-identical to
    /// `codec.roundTrip(original)` on the sending side.
    public var tensor: Tensor { features.decoded() }

    var payloadSize: Int {
        8 + 4 + 1 + features.wireSize
    }

    func validate(limits: WireLimits) throws {
        try features.validate(limits: limits)
    }
}

extension EncodedTensor {
    /// Size of the encoded tensor inside an `infer` payload.
    var wireSize: Int {
        1 + 1 + 4 * min(shape.count, Int(UInt8.max)) + (kind == .int8 ? 5 : 0) + 4 + bytes.count
    }

    /// Checks everything a receiver checks: rank, dims, element count, quantisation
    /// parameters, byte count and finiteness of the data.
    func validate(limits: WireLimits) throws {
        try TensorCheck.rank(shape.count)
        var elements = 1
        for (i, d) in shape.enumerated() {
            guard d >= 1, d <= Int(UInt32.max) else {
                throw TensorCheck.invalid("tensor.dims[\(i)]", "\(d)", "1...\(UInt32.max)")
            }
            elements = try TensorCheck.accumulate(elements, d, limit: limits.maxTensorElements)
        }
        if kind == .int8 {
            guard let q = quantization else {
                throw TensorCheck.invalid("tensor.quantization", "missing", "scale and zero point for int8")
            }
            try TensorCheck.scale(q.scale)
        } else if quantization != nil {
            throw TensorCheck.invalid("tensor.quantization", "present", "none for \(kind)")
        }
        try TensorCheck.byteCount(bytes.count, elements: elements, kind: kind)
        try TensorCheck.finite(bytes, kind: kind)
    }
}

/// The tensor checks shared by the reader and `validate`, so both reject the same things.
enum TensorCheck {
    static func invalid(_ field: String, _ value: String, _ expected: String) -> WireError {
        .invalidValue(message: .infer, field: field, value: value, expected: expected)
    }

    static func rank(_ rank: Int) throws {
        guard WireLimits.tensorRanks.contains(rank) else {
            throw invalid("tensor.rank", "\(rank)", "\(WireLimits.tensorRanks)")
        }
    }

    /// Multiplies in one more dimension, failing as soon as the product passes `limit`.
    static func accumulate(_ elements: Int, _ dim: Int, limit: Int) throws -> Int {
        let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
        guard !overflow, product <= limit else {
            throw invalid("tensor.elements", overflow ? "overflow" : "\(product)", "at most \(limit)")
        }
        return product
    }

    static func scale(_ scale: Float) throws {
        let largest = WireLimits.maxFeatureMagnitude / 255
        guard scale.isFinite, scale > 0, scale <= largest else {
            throw invalid("tensor.scale", "\(scale)", "a positive number of at most \(largest) (2^20 / 255)")
        }
    }

    static func byteCount(_ count: Int, elements: Int, kind: FeatureCodecKind) throws {
        let expected = elements * kind.bytesPerElement
        guard count == expected else {
            throw invalid("tensor.byteCount", "\(count)",
                          "\(expected) (\(elements) elements × \(kind.bytesPerElement) bytes for \(kind))")
        }
    }

    /// Rejects NaN, ±infinity and magnitudes above ``WireLimits/maxFeatureMagnitude`` in float32
    /// data, and NaN and ±infinity in float16 data (whose finite values are all below the bound).
    static func finite(_ bytes: [UInt8], kind: FeatureCodecKind) throws {
        let bad: Int? = bytes.withUnsafeBytes { raw -> Int? in
            switch kind {
            case .float32:
                let bound = WireLimits.maxFeatureMagnitude.bitPattern
                for i in 0..<(raw.count / 4) {
                    let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self))
                    // Magnitude bits above the bound's: larger than 2^20, infinite or NaN.
                    if bits & 0x7FFF_FFFF > bound { return i }
                }
            case .float16:
                for i in 0..<(raw.count / 2) {
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
                    if bits & 0x7C00 == 0x7C00 { return i }
                }
            case .int8:
                break
            }
            return nil
        }
        if let i = bad {
            let value = EncodedTensor(kind: kind, shape: [1], bytes: Array(bytes[(i * kind.bytesPerElement)..<((i + 1) * kind.bytesPerElement)]))
                .decoded().data[0]
            throw invalid("tensor.data[\(i)]", "\(value)", "a finite \(kind) of magnitude at most 2^20")
        }
    }
}

extension PayloadReader {
    mutating func readInferRequest(limits: WireLimits) throws -> InferRequest {
        let sampleID = try integer("sampleID", as: UInt64.self)
        let deadline = try integer("deadlineMillis", as: UInt32.self)
        let stage = try integer("stageIndex", as: UInt8.self)
        let features = try readEncodedTensor(limits: limits)
        return InferRequest(sampleID: sampleID, deadlineMillis: deadline, stageIndex: stage, features: features)
    }

    /// Reads and validates a tensor, checking each field before reading the next, so a
    /// hostile element count is rejected before the data is copied.
    mutating func readEncodedTensor(limits: WireLimits) throws -> EncodedTensor {
        let rawCodec = try integer("tensor.codec", as: UInt8.self)
        guard let kind = FeatureCodecKind(rawValue: rawCodec) else {
            throw TensorCheck.invalid("tensor.codec", "\(rawCodec)", "0 (float32), 1 (float16) or 2 (int8)")
        }
        let rank = Int(try integer("tensor.rank", as: UInt8.self))
        try TensorCheck.rank(rank)
        var shape = [Int]()
        shape.reserveCapacity(rank)
        var elements = 1
        for i in 0..<rank {
            let d = Int(try integer("tensor.dims[\(i)]", as: UInt32.self))
            guard d >= 1 else { throw TensorCheck.invalid("tensor.dims[\(i)]", "\(d)", "1...\(UInt32.max)") }
            elements = try TensorCheck.accumulate(elements, d, limit: limits.maxTensorElements)
            shape.append(d)
        }
        var quantization: Int8Quantization? = nil
        if kind == .int8 {
            let scale = try float("tensor.scale")
            try TensorCheck.scale(scale)
            let zeroPoint = try integer("tensor.zeroPoint", as: Int8.self)
            quantization = Int8Quantization(scale: scale, zeroPoint: zeroPoint)
        }
        let byteCount = Int(try integer("tensor.byteCount", as: UInt32.self))
        try TensorCheck.byteCount(byteCount, elements: elements, kind: kind)
        let data = try bytes("tensor.data", count: byteCount)
        try TensorCheck.finite(data, kind: kind)
        return EncodedTensor(kind: kind, shape: shape, quantization: quantization, bytes: data)
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeInferRequest(_ request: InferRequest) -> Int {
        var written = 0
        written += writeInteger(request.sampleID)
        written += writeInteger(request.deadlineMillis)
        written += writeInteger(request.stageIndex)
        written += writeEncodedTensor(request.features)
        return written
    }

    @discardableResult
    mutating func writeEncodedTensor(_ tensor: EncodedTensor) -> Int {
        var written = 0
        let dims = tensor.shape.prefix(Int(UInt8.max))
        written += writeInteger(tensor.kind.rawValue)
        written += writeInteger(UInt8(dims.count))
        for d in dims {
            written += writeInteger(UInt32(clamping: d))
        }
        if tensor.kind == .int8 {
            let q = tensor.quantization ?? Int8Quantization(scale: 1, zeroPoint: 0)
            written += writeWireFloat(q.scale)
            written += writeInteger(q.zeroPoint)
        }
        written += writeInteger(UInt32(clamping: tensor.bytes.count))
        written += writeBytes(tensor.bytes)
        return written
    }
}
