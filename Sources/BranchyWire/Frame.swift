/// One protocol data unit: a request id and a message.
///
/// On the wire a frame is the fixed 20-byte ``FrameHeader`` followed by the message
/// payload. Frames are plain values; parse them with `ByteBuffer.readFrame(limits:)` and
/// serialise them with `ByteBuffer.writeFrame(_:)`.
public struct Frame: Hashable, Sendable {
    /// Matches a response to its request on a multiplexed connection. `0` is reserved for
    /// connection-level messages (hello, helloAck, goodbye, connection errors).
    public var requestID: UInt64
    /// The message carried by the frame.
    public var message: Message

    /// Creates a frame.
    public init(requestID: UInt64, message: Message) {
        self.requestID = requestID
        self.message = message
    }

    /// The body of a frame.
    public enum Message: Hashable, Sendable {
        /// A client introduces itself (first frame on a connection).
        case hello(Hello)
        /// The server accepts the hello and introduces itself.
        case helloAck(Hello)
        /// Run the model from a stage onwards on the given features.
        case infer(InferRequest)
        /// The outcome of an `infer` with the same request id.
        case result(InferResult)
        /// A failure of one request, or of the whole connection when the request id is 0.
        case error(ErrorFrame)
        /// The server is draining: no new requests will be accepted on this connection.
        case goodbye
        /// Version 2: a client asks for the totals of the server's own upstream link.
        case statsRequest
        /// Version 2: the answer to `statsRequest`.
        case stats([LinkTotals])

        /// The type byte written in the header for this message.
        public var type: MessageType {
            switch self {
            case .hello: return .hello
            case .helloAck: return .helloAck
            case .infer: return .infer
            case .result: return .result
            case .error: return .error
            case .goodbye: return .goodbye
            case .statsRequest: return .statsRequest
            case .stats: return .stats
            }
        }
    }

    /// Size of this frame on the wire (header plus payload), exactly what
    /// `ByteBuffer.writeFrame(_:)` writes. Used for byte accounting without serialising.
    public var encodedSize: Int {
        encodedSize(in: .open)
    }

    /// Size of this frame on a connection of `dialect`, exactly what `ByteBuffer.writeFrame(_:dialect:)` writes.
    public func encodedSize(in dialect: FrameDialect) -> Int {
        let payload = payloadSize(in: dialect)
        if usesCompactHeader(in: dialect) {
            return FrameHeader.compactSize(requestID: requestID, payloadLength: payload) + payload
        }
        return FrameHeader.size + payload
    }

    /// Size of the payload alone (version 1).
    public var payloadSize: Int { payloadSize(in: .open) }

    /// Whether this frame goes out with the compact header: on a version-2 connection, every frame
    /// but the hello and helloAck.
    func usesCompactHeader(in dialect: FrameDialect) -> Bool {
        guard dialect.isCompact else { return false }
        switch message {
        case .hello, .helloAck: return false
        default: return true
        }
    }

    /// The version the payload is laid out in: a hello's own version before the dialect is fixed.
    func payloadVersion(in dialect: FrameDialect) -> UInt8 {
        guard dialect.version == nil else { return dialect.payloadVersion }
        switch message {
        case .hello(let h), .helloAck(let h):
            // A version this side does not speak is sent in version 1's layout, for the peer to refuse.
            let v = UInt8(clamping: h.protocolVersion)
            return FrameDialect.supportedVersions.contains(v) ? v : 1
        default:
            return 1
        }
    }

    /// Size of the payload on a connection of `dialect`.
    public func payloadSize(in dialect: FrameDialect) -> Int {
        let version = payloadVersion(in: dialect)
        switch message {
        case .hello(let h), .helloAck(let h):
            return h.payloadSize(version: version)
        case .infer(let r):
            return r.payloadSize(version: version)
        case .result(let r):
            return r.payloadSize(version: version, names: dialect.names)
        case .error(let e):
            return e.payloadSize
        case .goodbye, .statsRequest:
            return 0
        case .stats(let links):
            let entries = links.prefix(LinkTotals.maxEntries)
            return Varint.size(UInt64(entries.count)) + entries.reduce(0) { $0 + $1.payloadSize }
        }
    }

    /// Checks every limit a receiver enforces, so that a frame that passes is never
    /// rejected by a conforming peer with the same `limits`. ``FrameEncoder`` calls this
    /// before writing.
    ///
    /// - Throws: ``WireError`` naming the first offending field.
    public func validate(limits: WireLimits = .default, dialect: FrameDialect = .open) throws {
        let size = payloadSize(in: dialect)
        if size > limits.maxPayloadBytes {
            throw WireError.payloadTooLarge(length: UInt32(clamping: size), limit: limits.maxPayloadBytes)
        }
        switch message {
        case .hello(let h):
            try h.validate(as: .hello)
        case .helloAck(let h):
            try h.validate(as: .helloAck)
        case .infer(let r):
            try r.validate(limits: limits, version: payloadVersion(in: dialect))
        case .result(let r):
            try r.validate()
        case .error(let e):
            try e.validate()
        case .goodbye, .statsRequest:
            break
        case .stats(let links):
            if links.count > LinkTotals.maxEntries {
                throw WireError.invalidValue(message: .stats, field: "links.count", value: "\(links.count)", expected: "at most \(LinkTotals.maxEntries)")
            }
            for (i, l) in links.enumerated() {
                try checkLength(l.link, max: WireLimits.maxNameBytes, message: .stats, field: "links[\(i)].link")
            }
        }
        if message.type.rawValue > 6 && payloadVersion(in: dialect) < 2 {
            throw WireError.invalidValue(message: message.type, field: "type", value: "\(message.type.rawValue)", expected: "1...6 on a version 1 connection")
        }
    }
}

/// The message type byte of the frame header.
public enum MessageType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Client introduction, the first frame on a connection.
    case hello = 1
    /// Server acceptance of a hello.
    case helloAck = 2
    /// An inference request.
    case infer = 3
    /// The answer to an inference request.
    case result = 4
    /// A request- or connection-level failure.
    case error = 5
    /// The server is draining.
    case goodbye = 6
    /// Version 2: asks for the server's upstream link totals.
    case statsRequest = 7
    /// Version 2: the server's upstream link totals.
    case stats = 8

    public var description: String {
        switch self {
        case .hello: return "hello"
        case .helloAck: return "helloAck"
        case .infer: return "infer"
        case .result: return "result"
        case .error: return "error"
        case .goodbye: return "goodbye"
        case .statsRequest: return "statsRequest"
        case .stats: return "stats"
        }
    }
}

/// Receiver-side limits. Both peers should use the same values; the defaults are the
/// protocol's recommended limits.
public struct WireLimits: Hashable, Sendable {
    /// Largest payload accepted, checked against the header before anything is read.
    public var maxPayloadBytes: Int
    /// Largest number of elements in a feature tensor.
    public var maxTensorElements: Int
    /// The one shape a compressed feature tensor may state (a server's input shape), when set: a
    /// compressed tensor of any other shape is refused before anything is decompressed, so a peer
    /// cannot make the receiver inflate more than it will use.
    public var compressedShape: [Int]?

    /// Creates limits. Values out of range are clamped: `maxPayloadBytes` to 0...2^32 − 1,
    /// `maxTensorElements` to at least 1.
    public init(maxPayloadBytes: Int = 4 << 20, maxTensorElements: Int = 1 << 22, compressedShape: [Int]? = nil) {
        self.maxPayloadBytes = min(max(0, maxPayloadBytes), Int(UInt32.max))
        self.maxTensorElements = max(1, maxTensorElements)
        self.compressedShape = compressedShape
    }

    /// 4 MiB payloads, 2^22 tensor elements.
    public static let `default` = WireLimits()

    /// Longest node, exit or link name in UTF-8 bytes (fixed by the protocol).
    public static let maxNameBytes = 255
    /// Longest free-text field (reason, error message) in UTF-8 bytes (fixed by the protocol).
    public static let maxTextBytes = Int(UInt16.max)
    /// Allowed tensor ranks (fixed by the protocol).
    public static let tensorRanks: ClosedRange<Int> = 1...6
    /// Largest magnitude of a feature value (fixed by the protocol): 2^20. Float features beyond it,
    /// and int8 scales that could reconstruct values beyond it (scale > 2^20 / 255), are refused as
    /// `badTensor`, so a peer cannot make a stage overflow to infinity.
    public static let maxFeatureMagnitude: Float = 1_048_576
    /// Largest byte count a hop may report for one request or response (fixed by the protocol): 2^33,
    /// more than a frame of the largest length field in its TLS records. A result that reports more is
    /// refused, so sums over a run's hops cannot overflow.
    public static let maxHopBytes: UInt64 = 1 << 33
    /// Largest connection or byte count a `stats` entry may carry (fixed by the protocol): 2^50 (1 PiB),
    /// so the totals of every link of a report add up without overflow.
    public static let maxLinkTotal: UInt64 = 1 << 50
}
