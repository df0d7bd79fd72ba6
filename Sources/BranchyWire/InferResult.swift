import BranchyTensor
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
    /// Microseconds from the moment the sending node handed the request to the link to the moment
    /// the answer came back, as that node measured them; 0 when not measured (the request did not
    /// ask for timings, ``InferRequest/wantsTimings``). Version 2 only.
    public var roundTripMicros: UInt64 = 0
    /// Microseconds the node at the far end of the link held the request (from reading it to
    /// writing its answer: queue, compute and its own upstream wait), as it reported them; 0 when
    /// not known. `roundTripMicros − upstreamMicros` is what the link itself cost. Version 2 only.
    public var upstreamMicros: UInt64 = 0

    /// Most microseconds a timing may state (about 12 days): a larger one is a `badFrame`.
    public static let maxMicros: UInt64 = 1 << 40

    /// Creates a hop cost.
    public init(link: String, requestFrameBytes: UInt64, responseFrameBytes: UInt64,
                requestTLSBytes: UInt64, responseTLSBytes: UInt64, roundTripMicros: UInt64 = 0, upstreamMicros: UInt64 = 0) {
        self.link = link
        self.requestFrameBytes = requestFrameBytes
        self.responseFrameBytes = responseFrameBytes
        self.requestTLSBytes = requestTLSBytes
        self.responseTLSBytes = responseTLSBytes
        self.roundTripMicros = roundTripMicros
        self.upstreamMicros = upstreamMicros
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
    /// The entropies (finite) at the exits the sample passed on its way up before the one that
    /// answered, in order, ending just before `exitIndex`: each node that forwarded the sample
    /// puts its own exits' in front of its upstream's. At most ``maxHops``. Version 2 only
    /// (version 1 peers leave it empty).
    public var passedEntropies: [Float] = []
    /// The answering exit's class probabilities (finite, 0 to 1), when the request asked for them
    /// (``InferRequest/wantsProbabilities``); empty otherwise. Version 2 only.
    public var probabilities: [Float] = []
    /// Most classes a result's probabilities may list (a class index is a `UInt16`).
    public static let maxClasses = Int(UInt16.max) + 1
    /// Microseconds the sending node held the request, from reading it to writing this answer
    /// (queue, compute and its own upstream wait); 0 when the request did not ask for timings
    /// (``InferRequest/wantsTimings``). A node that forwards the answer moves it into the hop it
    /// adds (``HopCost/upstreamMicros``) and states its own. Version 2 only.
    public var serviceMicros: UInt64 = 0

    /// Whether the version-2 result carries timings (flag bit 4).
    var hasTimings: Bool {
        serviceMicros != 0 || hops.prefix(InferResult.maxHops).contains { $0.roundTripMicros != 0 || $0.upstreamMicros != 0 }
    }

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

    /// Payload size in the layout of `version`; version 2 refers to names in `names` by index.
    func payloadSize(version: UInt8, names: NameTable) -> Int {
        guard version >= 2 else { return payloadSize }
        func ref(_ n: String) -> Int { names.index(of: n) != nil ? 1 : 2 + min(n.utf8.count, WireLimits.maxNameBytes) }
        let timed = hasTimings
        let hopBytes = hops.prefix(InferResult.maxHops).reduce(0) {
            $0 + ref($1.link) + Varint.size($1.requestFrameBytes) + Varint.size($1.responseFrameBytes)
                + Varint.size($1.requestTLSBytes) + Varint.size($1.responseTLSBytes)
                + (timed ? Varint.size($1.roundTripMicros) + Varint.size($1.upstreamMicros) : 0)
        }
        let timingBytes = timed ? Varint.size(serviceMicros) : 0
        let reasonBytes = reason.isEmpty ? 0 : Varint.size(UInt64(wireUTF8(reason).count)) + wireUTF8(reason).count
        let passed = min(passedEntropies.count, InferResult.maxHops)
        let passedBytes = passed == 0 ? 0 : Varint.size(UInt64(passed)) + 2 * passed
        let classes = min(probabilities.count, InferResult.maxClasses)
        let probabilityBytes = classes == 0 ? 0 : Varint.size(UInt64(classes)) + 4 * classes
        return 1 + reasonBytes + 1 + ref(exitName) + ref(nodeName) + Varint.size(UInt64(predictedClass)) + 2 + 2 + passedBytes + probabilityBytes + timingBytes
            + Varint.size(UInt64(min(hops.count, InferResult.maxHops))) + hopBytes
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
        if passedEntropies.count > InferResult.maxHops {
            throw WireError.invalidValue(message: .result, field: "passedEntropies.count", value: "\(passedEntropies.count)",
                                         expected: "at most \(InferResult.maxHops)")
        }
        for (i, e) in passedEntropies.enumerated() { try checkFinite(e, message: .result, field: "passedEntropies[\(i)]") }
        if probabilities.count > InferResult.maxClasses {
            throw WireError.invalidValue(message: .result, field: "probabilities.count", value: "\(probabilities.count)",
                                         expected: "at most \(InferResult.maxClasses)")
        }
        for (i, p) in probabilities.enumerated() where !(p >= 0 && p <= 1) {
            throw WireError.invalidValue(message: .result, field: "probabilities[\(i)]", value: "\(p)", expected: "a probability from 0 to 1")
        }
        if hops.count > InferResult.maxHops {
            throw WireError.invalidValue(message: .result, field: "hops.count", value: "\(hops.count)",
                                         expected: "at most \(InferResult.maxHops)")
        }
        if serviceMicros > HopCost.maxMicros {
            throw WireError.invalidValue(message: .result, field: "serviceMicros", value: "\(serviceMicros)", expected: "at most \(HopCost.maxMicros)")
        }
        for (i, hop) in hops.enumerated() {
            try checkLength(hop.link, max: WireLimits.maxNameBytes, message: .result, field: "hops[\(i)].link")
            for (field, v) in [("roundTripMicros", hop.roundTripMicros), ("upstreamMicros", hop.upstreamMicros)] where v > HopCost.maxMicros {
                throw WireError.invalidValue(message: .result, field: "hops[\(i)].\(field)", value: "\(v)", expected: "at most \(HopCost.maxMicros)")
            }
            for (field, v) in [("requestFrameBytes", hop.requestFrameBytes), ("responseFrameBytes", hop.responseFrameBytes),
                               ("requestTLSBytes", hop.requestTLSBytes), ("responseTLSBytes", hop.responseTLSBytes)]
            where v > WireLimits.maxHopBytes {
                throw WireError.invalidValue(message: .result, field: "hops[\(i)].\(field)", value: "\(v)", expected: "at most \(WireLimits.maxHopBytes)")
            }
        }
    }
}

extension PayloadReader {
    /// A hop's byte count in the fixed layout of version 1, at most ``WireLimits/maxHopBytes``.
    mutating func hopBytes(_ field: String) throws -> UInt64 {
        let v = try integer(field, as: UInt64.self)
        guard v <= WireLimits.maxHopBytes else { throw invalid(field, value: "\(v)", expected: "at most \(WireLimits.maxHopBytes)") }
        return v
    }

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
                requestFrameBytes: try hopBytes("hops[\(i)].requestFrameBytes"),
                responseFrameBytes: try hopBytes("hops[\(i)].responseFrameBytes"),
                requestTLSBytes: try hopBytes("hops[\(i)].requestTLSBytes"),
                responseTLSBytes: try hopBytes("hops[\(i)].responseTLSBytes")))
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

/// Version 2 of `result`: flags `UInt8` (bit 0 degraded, bit 1 a reason follows, bit 2 passed
/// entropies follow, bit 3 probabilities follow, bit 4 timings follow), [reason: varint length + UTF-8], exitIndex `UInt8`,
/// exitName and nodeName as name references, predictedClass varint, confidence and entropy as
/// binary16, [passed entropies: varint count 1…255, then each as binary16], [probabilities: varint
/// count 1…65536, then each as a big-endian float32], [serviceMicros varint], hop count varint, then per hop
/// the link as a name reference, the four byte counts as varints [and roundTripMicros, upstreamMicros]. A name reference is an index into the
/// connection's ``NameTable``, or 255 followed by a `UInt8` length and the UTF-8 name.
extension PayloadReader {
    mutating func nameReference(_ field: String, names: NameTable) throws -> String {
        let i = try integer(field, as: UInt8.self)
        if i == NameTable.inline {
            let length = Int(try integer(field + ".length", as: UInt8.self))
            let raw = try bytes(field, count: length)
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw invalid(field, value: "\(length) bytes", expected: "valid UTF-8")
            }
            // One encoding per name: a name the table has must be sent as its index.
            if let index = names.index(of: s) {
                throw invalid(field, value: "a name given in full", expected: "index \(index), the name's place in the table")
            }
            return s
        }
        guard let name = names.name(at: i) else {
            throw invalid(field, value: "index \(i)", expected: "an index below \(names.names.count) (the helloAck's names) or 255")
        }
        return name
    }

    mutating func half(_ field: String) throws -> Float {
        let v = FeatureCodecKind.float(float16Bits: try integer(field, as: UInt16.self))
        try checkFinite(v, message: message, field: field)
        return v
    }

    mutating func readCompactInferResult(names: NameTable) throws -> InferResult {
        let flags = try integer("flags", as: UInt8.self)
        guard flags & ~0x1F == 0 else {
            throw invalid("flags", value: "\(flags)", expected: "only bits 0 (degraded), 1 (reason), 2 (passed entropies), 3 (probabilities) and 4 (timings)")
        }
        var reason = ""
        if flags & 0x02 != 0 {
            let length = Int(try varint("reason.length", max: UInt64(WireLimits.maxTextBytes)))
            // An empty reason is sent by leaving bit 1 clear: one encoding per result.
            guard length > 0 else { throw invalid("reason.length", value: "0", expected: "1...\(WireLimits.maxTextBytes) when flag bit 1 is set") }
            let raw = try bytes("reason", count: length)
            guard let s = String(validating: raw, as: UTF8.self) else { throw invalid("reason", value: "\(length) bytes", expected: "valid UTF-8") }
            reason = s
        }
        let exitIndex = try integer("exitIndex", as: UInt8.self)
        let exitName = try nameReference("exitName", names: names)
        let nodeName = try nameReference("nodeName", names: names)
        let predicted = try varint("predictedClass", max: UInt64(UInt16.max))
        let confidence = try half("confidence")
        let entropy = try half("entropy")
        var passed: [Float] = []
        if flags & 0x04 != 0 {
            let n = Int(try varint("passedEntropies.count", max: UInt64(InferResult.maxHops)))
            // No entropies passed is sent by leaving bit 2 clear: one encoding per result.
            guard n > 0 else { throw invalid("passedEntropies.count", value: "0", expected: "1...\(InferResult.maxHops) when flag bit 2 is set") }
            for i in 0..<n { passed.append(try half("passedEntropies[\(i)]")) }
        }
        var probabilities: [Float] = []
        if flags & 0x08 != 0 {
            let n = Int(try varint("probabilities.count", max: UInt64(InferResult.maxClasses)))
            guard n > 0 else { throw invalid("probabilities.count", value: "0", expected: "1...\(InferResult.maxClasses) when flag bit 3 is set") }
            guard remaining >= 4 * n else { throw truncated("probabilities", needed: 4 * n) }
            probabilities.reserveCapacity(n)
            for i in 0..<n {
                let p = try float("probabilities[\(i)]")
                guard p >= 0 && p <= 1 else { throw invalid("probabilities[\(i)]", value: "\(p)", expected: "a probability from 0 to 1") }
                probabilities.append(p)
            }
        }
        let timed = flags & 0x10 != 0
        let service = timed ? try varint("serviceMicros", max: HopCost.maxMicros) : 0
        let count = Int(try varint("hops.count", max: UInt64(InferResult.maxHops)))
        var hops: [HopCost] = []
        hops.reserveCapacity(min(count, remaining / 5))
        for i in 0..<count {
            var hop = HopCost(link: try nameReference("hops[\(i)].link", names: names),
                              requestFrameBytes: try varint("hops[\(i)].requestFrameBytes", max: WireLimits.maxHopBytes),
                              responseFrameBytes: try varint("hops[\(i)].responseFrameBytes", max: WireLimits.maxHopBytes),
                              requestTLSBytes: try varint("hops[\(i)].requestTLSBytes", max: WireLimits.maxHopBytes),
                              responseTLSBytes: try varint("hops[\(i)].responseTLSBytes", max: WireLimits.maxHopBytes))
            if timed {
                hop.roundTripMicros = try varint("hops[\(i)].roundTripMicros", max: HopCost.maxMicros)
                hop.upstreamMicros = try varint("hops[\(i)].upstreamMicros", max: HopCost.maxMicros)
            }
            hops.append(hop)
        }
        // Timings that are all zero are sent by leaving bit 4 clear: one encoding per result.
        if timed, service == 0, !hops.contains(where: { $0.roundTripMicros != 0 || $0.upstreamMicros != 0 }) {
            throw invalid("serviceMicros", value: "0", expected: "a timing above 0 somewhere when flag bit 4 is set")
        }
        var result = InferResult(status: flags & 1 == 1 ? .degraded : .ok, reason: reason, exitIndex: exitIndex, exitName: exitName,
                                 nodeName: nodeName, predictedClass: UInt16(predicted), confidence: confidence, entropy: entropy, hops: hops)
        result.passedEntropies = passed
        result.probabilities = probabilities
        result.serviceMicros = service
        return result
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeNameReference(_ name: String, names: NameTable) -> Int {
        if let i = names.index(of: name) { return writeInteger(i) }
        let utf8 = Array(name.utf8.prefix(WireLimits.maxNameBytes))
        return writeInteger(NameTable.inline) + writeInteger(UInt8(utf8.count)) + writeBytes(utf8)
    }

    @discardableResult
    mutating func writeCompactInferResult(_ result: InferResult, names: NameTable) -> Int {
        let reason = wireUTF8(result.reason)
        let passed = result.passedEntropies.prefix(InferResult.maxHops)
        let probabilities = result.probabilities.prefix(InferResult.maxClasses)
        let timed = result.hasTimings
        var written = writeInteger((result.status == .degraded ? 1 : 0) | (reason.isEmpty ? 0 : 2) | (passed.isEmpty ? 0 : 4)
                                   | (probabilities.isEmpty ? 0 : 8) | (timed ? 0x10 : 0) as UInt8)
        if !reason.isEmpty { written += writeVarint(UInt64(reason.count)) + writeBytes(reason) }
        written += writeInteger(result.exitIndex)
        written += writeNameReference(result.exitName, names: names)
        written += writeNameReference(result.nodeName, names: names)
        written += writeVarint(UInt64(result.predictedClass))
        written += writeInteger(FeatureCodecKind.float16Bits(result.confidence))
        written += writeInteger(FeatureCodecKind.float16Bits(result.entropy))
        if !passed.isEmpty {
            written += writeVarint(UInt64(passed.count))
            for e in passed { written += writeInteger(FeatureCodecKind.float16Bits(e)) }
        }
        if !probabilities.isEmpty {
            written += writeVarint(UInt64(probabilities.count))
            for p in probabilities { written += writeWireFloat(p) }
        }
        if timed { written += writeVarint(result.serviceMicros) }
        let hops = result.hops.prefix(InferResult.maxHops)
        written += writeVarint(UInt64(hops.count))
        for hop in hops {
            written += writeNameReference(hop.link, names: names)
            written += writeVarint(hop.requestFrameBytes) + writeVarint(hop.responseFrameBytes)
            written += writeVarint(hop.requestTLSBytes) + writeVarint(hop.responseTLSBytes)
            if timed { written += writeVarint(hop.roundTripMicros) + writeVarint(hop.upstreamMicros) }
        }
        return written
    }
}
