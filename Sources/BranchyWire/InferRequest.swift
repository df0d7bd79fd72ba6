import BranchyTensor
import NIOCore

/// The payload of `infer`: run the model from `stageIndex` on `features`.
///
/// Layout: sampleID `UInt64`, deadlineMillis `UInt32`, stageIndex `UInt8`, then the
/// encoded tensor: codec `UInt8`, rank `UInt8` (1...6), `rank` dims `UInt32` (each ≥ 1),
/// for `int8` only scale `Float32` and zeroPoint `Int8`, then byteCount `UInt32` and the
/// little-endian element data. Version 2 packs the same fields tighter (see docs/PROTOCOL.md):
/// sampleID and deadline as varints, the codec byte with the compressor in its high nibble,
/// dims as varints, the codec's parameters, and the data to the end of the payload.
public struct InferRequest: Hashable, Sendable {
    /// Identifies the input sample end to end, for tracing; not used for matching.
    public var sampleID: UInt64
    /// Remaining time budget in milliseconds when the frame was sent; 0 means no deadline.
    public var deadlineMillis: UInt32
    /// The stage the receiver should run next.
    public var stageIndex: UInt8
    /// The input of that stage, in its wire encoding.
    public var features: EncodedTensor
    /// Whether the answer should carry the answering exit's class probabilities
    /// (``InferResult/probabilities``). Version 2 only: bit 7 of the stage byte; a version 1
    /// link drops it, and its answers carry none.
    public var wantsProbabilities = false
    /// Entropy thresholds that replace the receivers' own for this request, by exit index (each
    /// finite, 0 to 2²⁰): a node that runs exit `i` lets the sample leave there when its entropy is
    /// below `exitThresholds[i]` (the model's last exit always answers). Each node that forwards the
    /// request passes them on. At most 255. Version 2 only (the stage byte's options, see
    /// docs/PROTOCOL.md); a version 1 link drops them, and the nodes beyond it use their own.
    public var exitThresholds: [UInt8: Float] = [:]
    /// Whether the answer should say how long each node held the request and each link's round
    /// trip (``InferResult/serviceMicros``, ``HopCost/roundTripMicros``). Version 2 only.
    public var wantsTimings = false

    /// Most thresholds a request may carry.
    public static let maxThresholds = Int(UInt8.max)
    /// Largest stage index a version 2 request can name: bits 6 and 7 of its stage byte are flags.
    public static let maxCompactStage: UInt8 = 0x3F

    /// Whether the request carries the version-2 options block (thresholds or a timing request).
    var hasOptions: Bool { !exitThresholds.isEmpty || wantsTimings }

    /// Size of the version-2 options block: flags, then the thresholds when there are any.
    var optionsSize: Int {
        guard hasOptions else { return 0 }
        let n = min(exitThresholds.count, Self.maxThresholds)
        return 1 + (n == 0 ? 0 : Varint.size(UInt64(n)) + 5 * n)
    }

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
    /// `codec.roundTrip(original)` on the sending side. Throws when the encoded parts do not fit
    /// together (a decoder that validated the frame never lets such a tensor through).
    public func tensor() throws -> Tensor { try features.decoded() }

    func payloadSize(version: UInt8) -> Int {
        version >= 2
            ? Varint.size(sampleID) + Varint.size(UInt64(deadlineMillis)) + 1 + optionsSize + features.compactWireSize
            : 8 + 4 + 1 + features.wireSize
    }

    func validate(limits: WireLimits, version: UInt8 = 1) throws {
        if version >= 2, stageIndex > Self.maxCompactStage {
            throw TensorCheck.invalid("stageIndex", "\(stageIndex)", "0...\(Self.maxCompactStage) on a version 2 connection (bits 6 and 7 are flags)")
        }
        if exitThresholds.count > Self.maxThresholds {
            throw TensorCheck.invalid("thresholds.count", "\(exitThresholds.count)", "at most \(Self.maxThresholds)")
        }
        for (exit, t) in exitThresholds { try Self.checkThreshold(t, field: "thresholds[exit \(exit)]") }
        if version < 2 {
            guard FeatureCodecKind.version1Kinds.contains(features.kind) else {
                throw TensorCheck.invalid("tensor.codec", "\(features.kind)", "float32, float16 or int8 on a version 1 connection")
            }
            guard features.compression == .none else {
                throw TensorCheck.invalid("tensor.compression", "\(features.compression)", "none on a version 1 connection")
            }
        }
        try features.validate(limits: limits)
    }

    /// A threshold must be finite, from +0 to 2²⁰ (-0 is refused: one encoding per threshold).
    static func checkThreshold(_ t: Float, field: String) throws {
        guard t.isFinite, t.sign == .plus, t <= WireLimits.maxFeatureMagnitude else {
            throw TensorCheck.invalid(field, "\(t)", "a finite entropy threshold from 0 to 2^20")
        }
    }
}

extension EncodedTensor {
    /// Size of the encoded tensor inside a version-1 `infer` payload.
    var wireSize: Int {
        1 + 1 + 4 * min(shape.count, Int(UInt8.max)) + (kind == .int8 ? 5 : 0) + 4 + bytes.count
    }

    /// Size of the encoded tensor inside a version-2 `infer` payload.
    var compactWireSize: Int {
        1 + 1 + shape.prefix(Int(UInt8.max)).reduce(0) { $0 + Varint.size(UInt64(clamping: $1)) }
            + kind.parameterByteCount(shape: shape) + wireDataCount
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
        guard parameters.matches(kind, channels: shape.first ?? 1) else {
            throw TensorCheck.invalid("tensor.quantization", "\(parameters)", "the parameters of \(kind)")
        }
        try TensorCheck.parameters(parameters)
        try TensorCheck.byteCount(bytes.count, elements: elements, kind: kind)
        try TensorCheck.finite(bytes, kind: kind)
        try TensorCheck.padding(bytes, elements: elements, kind: kind)
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

    static func scale(_ scale: Float, field: String = "tensor.scale", levels: Int = 255) throws {
        let largest = WireLimits.maxFeatureMagnitude / Float(levels)
        guard scale.isFinite, scale > 0, scale <= largest else {
            throw invalid(field, "\(scale)", "a positive number of at most \(largest) (2^20 / \(levels))")
        }
    }

    static func byteCount(_ count: Int, elements: Int, kind: FeatureCodecKind) throws {
        let expected = kind.dataByteCount(elements: elements)
        guard count == expected else {
            throw invalid("tensor.byteCount", "\(count)", "\(expected) (\(elements) elements as \(kind))")
        }
    }

    /// Checks every scale: finite, positive (sign: not negative) and small enough that no value
    /// reconstructs beyond ``WireLimits/maxFeatureMagnitude``; int4 zero points within 0...15.
    static func parameters(_ p: CodecParameters) throws {
        switch p {
        case .none: break
        case .int8(let q): try scale(q.scale)
        case .int8PerChannel(let qs):
            for (c, q) in qs.enumerated() { try scale(q.scale, field: "tensor.scale[\(c)]") }
        case .int4(let q):
            try scale(q.scale, levels: 15)
            guard q.zeroPoint <= 15 else { throw invalid("tensor.zeroPoint", "\(q.zeroPoint)", "0...15 for int4") }
        case .sign(let s):
            guard s.isFinite, s >= 0, s <= WireLimits.maxFeatureMagnitude else {
                throw invalid("tensor.scale", "\(s)", "a number from 0 to 2^20")
            }
        }
    }

    /// The unused high nibble of an odd int4 tensor, and the unused bits of a sign tensor's last
    /// byte, must be zero, so that every tensor has one encoding.
    static func padding(_ bytes: [UInt8], elements: Int, kind: FeatureCodecKind) throws {
        guard let last = bytes.last else { return }
        switch kind {
        case .int4 where elements % 2 == 1 && last & 0xF0 != 0:
            throw invalid("tensor.data[\(bytes.count - 1)]", "\(last)", "a zero high nibble after the last int4 value")
        case .sign where elements % 8 != 0 && last >> UInt8(elements % 8) != 0:
            throw invalid("tensor.data[\(bytes.count - 1)]", "\(last)", "zero bits after the last sign bit")
        default: break
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
            default:
                break
            }
            return nil
        }
        if let i = bad {
            let value = try EncodedTensor(kind: kind, shape: [1], bytes: Array(bytes[(i * kind.dataByteCount(elements: 1))..<((i + 1) * kind.dataByteCount(elements: 1))]))
                .decoded().data.first ?? .nan
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
        guard let kind = FeatureCodecKind(rawValue: rawCodec), FeatureCodecKind.version1Kinds.contains(kind) else {
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

extension PayloadReader {
    mutating func readCompactInferRequest(limits: WireLimits) throws -> InferRequest {
        let sampleID = try varint("sampleID")
        let deadline = try varint("deadlineMillis", max: UInt64(UInt32.max))
        // Bits 0-5: the stage; bit 6: an options block follows; bit 7: the answer should carry probabilities.
        let stageByte = try integer("stageIndex", as: UInt8.self)
        var thresholds: [UInt8: Float] = [:]
        var timings = false
        if stageByte & 0x40 != 0 {
            let options = try integer("options", as: UInt8.self)
            // An empty options block is sent by leaving bit 6 clear: one encoding per request.
            guard options & ~0x03 == 0, options != 0 else {
                throw TensorCheck.invalid("options", "\(options)", "bit 0 (thresholds follow), bit 1 (timings wanted) or both, when stage bit 6 is set")
            }
            timings = options & 0x02 != 0
            if options & 0x01 != 0 {
                let n = Int(try varint("thresholds.count", max: UInt64(InferRequest.maxThresholds)))
                guard n > 0 else { throw TensorCheck.invalid("thresholds.count", "0", "1...\(InferRequest.maxThresholds) when options bit 0 is set") }
                var previous = -1
                for i in 0..<n {
                    let exit = try integer("thresholds[\(i)].exit", as: UInt8.self)
                    // Exits in increasing order: one encoding per set of thresholds.
                    guard Int(exit) > previous else {
                        throw TensorCheck.invalid("thresholds[\(i)].exit", "\(exit)", "an exit index above \(previous) (increasing order)")
                    }
                    previous = Int(exit)
                    let t = try float("thresholds[\(i)].threshold")
                    try InferRequest.checkThreshold(t, field: "thresholds[\(i)].threshold")
                    thresholds[exit] = t
                }
            }
        }
        let features = try readCompactEncodedTensor(limits: limits)
        var request = InferRequest(sampleID: sampleID, deadlineMillis: UInt32(deadline), stageIndex: stageByte & InferRequest.maxCompactStage, features: features)
        request.wantsProbabilities = stageByte & 0x80 != 0
        request.exitThresholds = thresholds
        request.wantsTimings = timings
        return request
    }

    /// Reads a version-2 tensor, which runs to the end of the payload. Each field is checked
    /// before the next is read; compressed data may not inflate beyond the size its shape gives.
    mutating func readCompactEncodedTensor(limits: WireLimits) throws -> EncodedTensor {
        let codecByte = try integer("tensor.codec", as: UInt8.self)
        guard let kind = FeatureCodecKind(rawValue: codecByte & 0x0F),
              let compression = LosslessCompression(rawValue: codecByte >> 4) else {
            let kinds = FeatureCodecKind.allCases.map { "\($0.rawValue) (\($0.name))" }.joined(separator: ", ")
            throw TensorCheck.invalid("tensor.codec", "\(codecByte)", "a kind in the low nibble (\(kinds)) and 0 (none), 1 (lz4) or 2 (zstd) in the high nibble")
        }
        let rank = Int(try integer("tensor.rank", as: UInt8.self))
        try TensorCheck.rank(rank)
        var shape = [Int]()
        shape.reserveCapacity(rank)
        var elements = 1
        for i in 0..<rank {
            let d = Int(try varint("tensor.dims[\(i)]", max: UInt64(UInt32.max)))
            guard d >= 1 else { throw TensorCheck.invalid("tensor.dims[\(i)]", "\(d)", "1...\(UInt32.max)") }
            elements = try TensorCheck.accumulate(elements, d, limit: limits.maxTensorElements)
            shape.append(d)
        }
        let parameters: CodecParameters
        switch kind {
        case .float32, .float16, .uint8:
            parameters = .none
        case .int8:
            parameters = .int8(Int8Quantization(scale: try float("tensor.scale"), zeroPoint: try integer("tensor.zeroPoint", as: Int8.self)))
        case .int8PerChannel:
            var qs: [Int8Quantization] = []
            for c in 0..<shape[0] {
                qs.append(Int8Quantization(scale: try float("tensor.scale[\(c)]"), zeroPoint: try integer("tensor.zeroPoint[\(c)]", as: Int8.self)))
            }
            parameters = .int8PerChannel(qs)
        case .int4:
            parameters = .int4(Int4Quantization(scale: try float("tensor.scale"), zeroPoint: try integer("tensor.zeroPoint", as: UInt8.self)))
        case .sign:
            parameters = .sign(scale: try float("tensor.scale"))
        }
        try TensorCheck.parameters(parameters)
        let expected = kind.dataByteCount(elements: elements)
        let data: [UInt8]
        var packed: [UInt8] = []
        if compression == .none {
            guard remaining == expected else {
                if remaining < expected { throw truncated("tensor.data", needed: expected) }
                throw TensorCheck.invalid("tensor.data", "\(remaining) bytes", "\(expected) (\(elements) elements as \(kind))")
            }
            data = try bytes("tensor.data", count: expected)
        } else {
            if let wanted = limits.compressedShape, wanted != shape {
                throw TensorCheck.invalid("tensor.dims", "\(shape) (\(compression)-compressed)",
                                          "\(wanted), the input this node takes; compressed data of another shape is not decompressed")
            }
            guard remaining >= 1 else { throw truncated("tensor.data", needed: 1) }
            packed = try bytes("tensor.data", count: remaining)
            do {
                data = try compression.decompress(packed, expected: expected)
            } catch {
                throw TensorCheck.invalid("tensor.data", "\(packed.count) bytes of \(compression)", "\(error)")
            }
        }
        try TensorCheck.finite(data, kind: kind)
        try TensorCheck.padding(data, elements: elements, kind: kind)
        return EncodedTensor(kind: kind, shape: shape, parameters: parameters, bytes: data,
                             compression: compression, compressedBytes: packed)
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeCompactInferRequest(_ request: InferRequest) -> Int {
        var written = writeVarint(request.sampleID)
        written += writeVarint(UInt64(request.deadlineMillis))
        written += writeInteger(request.stageIndex & InferRequest.maxCompactStage | (request.hasOptions ? 0x40 : 0)
                                | (request.wantsProbabilities ? 0x80 : 0))
        if request.hasOptions {
            let thresholds = request.exitThresholds.sorted { $0.key < $1.key }.prefix(InferRequest.maxThresholds)
            written += writeInteger((thresholds.isEmpty ? 0 : 1) | (request.wantsTimings ? 2 : 0) as UInt8)
            if !thresholds.isEmpty {
                written += writeVarint(UInt64(thresholds.count))
                for (exit, t) in thresholds { written += writeInteger(exit) + writeWireFloat(t) }
            }
        }
        return written + writeCompactEncodedTensor(request.features)
    }

    @discardableResult
    mutating func writeCompactEncodedTensor(_ tensor: EncodedTensor) -> Int {
        var written = writeInteger(tensor.kind.rawValue | tensor.compression.rawValue << 4)
        let dims = tensor.shape.prefix(Int(UInt8.max))
        written += writeInteger(UInt8(dims.count))
        for d in dims { written += writeVarint(UInt64(clamping: d)) }
        switch tensor.parameters {
        case .none: break
        case .int8(let q): written += writeWireFloat(q.scale) + writeInteger(q.zeroPoint)
        case .int8PerChannel(let qs): for q in qs { written += writeWireFloat(q.scale) + writeInteger(q.zeroPoint) }
        case .int4(let q): written += writeWireFloat(q.scale) + writeInteger(q.zeroPoint)
        case .sign(let s): written += writeWireFloat(s)
        }
        return written + writeBytes(tensor.compression == .none ? tensor.bytes : tensor.compressedBytes)
    }
}
