import NIOCore

/// Whether a result is the answer the topology intended.
public enum ResultStatus: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The sample exited where the policy said it should.
    case ok = 0
    /// An answer was produced, but not the intended one (e.g. an upstream tier was
    /// unreachable and a local exit was taken instead); ``InferResult/reason`` says why.
    case degraded = 1

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .degraded: return "degraded"
        }
    }
}

/// Bytes one upstream hop spent on a request, reported back down the chain.
///
/// Layout: link (`UInt16` length + UTF-8, at most 255 bytes), then four `UInt64`:
/// requestFrameBytes, responseFrameBytes, requestTLSBytes, responseTLSBytes.
public struct HopCost: Hashable, Sendable {
    /// The link, e.g. `"edge->cloud"`.
    public var link: String
    /// Size of the request frame on that link (header + payload).
    public var requestFrameBytes: UInt64
    /// Size of the response frame on that link.
    public var responseFrameBytes: UInt64
    /// Bytes the request occupied on the wire including TLS record overhead.
    public var requestTLSBytes: UInt64
    /// Bytes the response occupied on the wire including TLS record overhead.
    public var responseTLSBytes: UInt64

    /// Creates a hop cost.
    public init(link: String, requestFrameBytes: UInt64, responseFrameBytes: UInt64,
                requestTLSBytes: UInt64, responseTLSBytes: UInt64) {
        self.link = link
        self.requestFrameBytes = requestFrameBytes
        self.responseFrameBytes = responseFrameBytes
        self.requestTLSBytes = requestTLSBytes
        self.responseTLSBytes = responseTLSBytes
    }

    var payloadSize: Int { wireStringSize(link) + 4 * 8 }
}

/// The payload of `result`: where and how a sample exited.
///
/// Layout: status `UInt8`, reason string, exitIndex `UInt8`, exitName string, nodeName
/// string, predictedClass `UInt16`, confidence `Float32`, entropy `Float32`, hop count
/// `UInt8`, then that many ``HopCost`` entries. Strings are `UInt16` length + UTF-8;
/// names are at most 255 bytes, the reason at most 65535.
public struct InferResult: Hashable, Sendable {
    /// Most hops a result can carry.
    public static let maxHops = Int(UInt8.max)

    /// Whether the intended exit was taken.
    public var status: ResultStatus
    /// Why the result is degraded; empty when `status == .ok`.
    public var reason: String
    /// Index of the exit branch that produced the answer.
    public var exitIndex: UInt8
    /// Name of that exit branch.
    public var exitName: String
    /// Node that ran the exit.
    public var nodeName: String
    /// Arg-max class.
    public var predictedClass: UInt16
    /// Soft-max probability of `predictedClass` (finite).
    public var confidence: Float
    /// Entropy of the soft-max at the exit (finite).
    public var entropy: Float
    /// Costs of the upstream hops this request crossed, nearest first.
    public var hops: [HopCost]

    /// Creates a result.
    public init(status: ResultStatus = .ok, reason: String = "", exitIndex: UInt8, exitName: String,
                nodeName: String, predictedClass: UInt16, confidence: Float, entropy: Float,
                hops: [HopCost] = []) {
        self.status = status
        self.reason = reason
        self.exitIndex = exitIndex
        self.exitName = exitName
        self.nodeName = nodeName
        self.predictedClass = predictedClass
        self.confidence = confidence
        self.entropy = entropy
        self.hops = hops
    }

    var payloadSize: Int {
        1 + wireStringSize(reason) + 1 + wireStringSize(exitName) + wireStringSize(nodeName)
            + 2 + 4 + 4 + 1 + hops.prefix(InferResult.maxHops).reduce(0) { $0 + $1.payloadSize }
    }

    func validate() throws {
        try checkLength(reason, max: WireLimits.maxTextBytes, message: .result, field: "reason")
        try checkLength(exitName, max: WireLimits.maxNameBytes, message: .result, field: "exitName")
        try checkLength(nodeName, max: WireLimits.maxNameBytes, message: .result, field: "nodeName")
        try checkFinite(confidence, message: .result, field: "confidence")
        try checkFinite(entropy, message: .result, field: "entropy")
        if hops.count > InferResult.maxHops {
            throw WireError.invalidValue(message: .result, field: "hops.count", value: "\(hops.count)",
                                         expected: "at most \(InferResult.maxHops)")
        }
        for (i, hop) in hops.enumerated() {
            try checkLength(hop.link, max: WireLimits.maxNameBytes, message: .result, field: "hops[\(i)].link")
        }
    }
}

extension PayloadReader {
    mutating func readInferResult() throws -> InferResult {
        let rawStatus = try integer("status", as: UInt8.self)
        guard let status = ResultStatus(rawValue: rawStatus) else {
            throw invalid("status", value: "\(rawStatus)", expected: "0 (ok) or 1 (degraded)")
        }
        let reason = try string("reason", maxBytes: WireLimits.maxTextBytes)
        let exitIndex = try integer("exitIndex", as: UInt8.self)
        let exitName = try string("exitName", maxBytes: WireLimits.maxNameBytes)
        let nodeName = try string("nodeName", maxBytes: WireLimits.maxNameBytes)
        let predictedClass = try integer("predictedClass", as: UInt16.self)
        let confidence = try float("confidence")
        try checkFinite(confidence, message: .result, field: "confidence")
        let entropy = try float("entropy")
        try checkFinite(entropy, message: .result, field: "entropy")
        let count = Int(try integer("hops.count", as: UInt8.self))
        var hops = [HopCost]()
        hops.reserveCapacity(min(count, remaining / 34))
        for i in 0..<count {
            let link = try string("hops[\(i)].link", maxBytes: WireLimits.maxNameBytes)
            hops.append(HopCost(
                link: link,
                requestFrameBytes: try integer("hops[\(i)].requestFrameBytes"),
                responseFrameBytes: try integer("hops[\(i)].responseFrameBytes"),
                requestTLSBytes: try integer("hops[\(i)].requestTLSBytes"),
                responseTLSBytes: try integer("hops[\(i)].responseTLSBytes")))
        }
        return InferResult(status: status, reason: reason, exitIndex: exitIndex, exitName: exitName,
                           nodeName: nodeName, predictedClass: predictedClass, confidence: confidence,
                           entropy: entropy, hops: hops)
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeInferResult(_ result: InferResult) -> Int {
        var written = 0
        written += writeInteger(result.status.rawValue)
        written += writeWireString(result.reason)
        written += writeInteger(result.exitIndex)
        written += writeWireString(result.exitName)
        written += writeWireString(result.nodeName)
        written += writeInteger(result.predictedClass)
        written += writeWireFloat(result.confidence)
        written += writeWireFloat(result.entropy)
        let hops = result.hops.prefix(InferResult.maxHops)
        written += writeInteger(UInt8(hops.count))
        for hop in hops {
            written += writeWireString(hop.link)
            written += writeInteger(hop.requestFrameBytes)
            written += writeInteger(hop.responseFrameBytes)
            written += writeInteger(hop.requestTLSBytes)
            written += writeInteger(hop.responseTLSBytes)
        }
        return written
    }
}
