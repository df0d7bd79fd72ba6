import NIOCore

/// Why a request or a connection failed. A `UInt16` on the wire.
///
/// Codes this implementation does not know are kept as their raw value, so a newer
/// peer's codes still reach logs intact.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code as sent on the wire.
    public var rawValue: UInt16

    /// Wraps any code, known or not.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// A frame could not be parsed or violates the protocol. Connection-level; the sender closes.
    public static let badFrame = ErrorCode(rawValue: 1)
    /// The frame version or hello protocol version is not supported. Closes.
    public static let unsupportedVersion = ErrorCode(rawValue: 2)
    /// A request arrived before a successful hello. Closes.
    public static let handshakeRequired = ErrorCode(rawValue: 3)
    /// A second hello on the same connection. Closes.
    public static let duplicateHello = ErrorCode(rawValue: 4)
    /// The peer's model fingerprint differs from this node's. Closes.
    public static let fingerprintMismatch = ErrorCode(rawValue: 5)
    /// The peer's name is known, but not with the role it claims on this port. Closes.
    public static let wrongRole = ErrorCode(rawValue: 6)
    /// The peer's name is not allowed on this port. Closes.
    public static let unknownNode = ErrorCode(rawValue: 7)
    /// The request id is already in flight on this connection. Request-level.
    public static let duplicateRequestID = ErrorCode(rawValue: 8)
    /// The tensor is malformed or does not fit the stage it is sent to.
    public static let badTensor = ErrorCode(rawValue: 9)
    /// The next tier could not be reached and no local fallback was possible. Request-level.
    public static let upstreamUnavailable = ErrorCode(rawValue: 10)
    /// The request's deadline passed before an answer was ready. Request-level.
    public static let deadlineExceeded = ErrorCode(rawValue: 11)
    /// The server is draining and accepts no new requests. Request-level.
    public static let shuttingDown = ErrorCode(rawValue: 12)
    /// An unexpected failure inside the node.
    public static let internalError = ErrorCode(rawValue: 13)
    /// More requests in flight on this connection than the server allows. Request-level.
    public static let tooManyRequests = ErrorCode(rawValue: 14)
    /// The stage index is not one this node can run. Request-level.
    public static let badStage = ErrorCode(rawValue: 15)
    /// A well-formed message that this side never accepts (e.g. a result sent to a server). Closes.
    public static let unexpectedMessage = ErrorCode(rawValue: 16)
    /// A node-wide limit is reached: connections (per node or per peer identity) or buffered
    /// input. Closes; the peer may reconnect later.
    public static let limitReached = ErrorCode(rawValue: 17)

    /// Every code defined by protocol version 1.
    public static let allKnown: [ErrorCode] = [
        .badFrame, .unsupportedVersion, .handshakeRequired, .duplicateHello, .fingerprintMismatch,
        .wrongRole, .unknownNode, .duplicateRequestID, .badTensor, .upstreamUnavailable,
        .deadlineExceeded, .shuttingDown, .internalError, .tooManyRequests, .badStage,
        .unexpectedMessage, .limitReached,
    ]

    /// The code's name, or `code<N>` for a code this implementation does not know.
    public var name: String {
        switch rawValue {
        case 1: return "badFrame"
        case 2: return "unsupportedVersion"
        case 3: return "handshakeRequired"
        case 4: return "duplicateHello"
        case 5: return "fingerprintMismatch"
        case 6: return "wrongRole"
        case 7: return "unknownNode"
        case 8: return "duplicateRequestID"
        case 9: return "badTensor"
        case 10: return "upstreamUnavailable"
        case 11: return "deadlineExceeded"
        case 12: return "shuttingDown"
        case 13: return "internalError"
        case 14: return "tooManyRequests"
        case 15: return "badStage"
        case 16: return "unexpectedMessage"
        case 17: return "limitReached"
        default: return "code\(rawValue)"
        }
    }

    public var description: String { name }
}

/// The payload of `error`: a code and a human-readable message.
///
/// Layout: code `UInt16`, message (`UInt16` length + UTF-8). The frame's request id names
/// the failed request; request id 0 means the whole connection failed.
public struct ErrorFrame: Hashable, Sendable, CustomStringConvertible {
    /// Longest message ``init(code:message:)`` keeps, in UTF-8 bytes.
    public static let preferredMaxMessageBytes = 1024

    /// What went wrong.
    public var code: ErrorCode
    /// Details for logs; at most 65535 UTF-8 bytes on the wire.
    public var message: String

    /// Creates an error, cutting `message` to at most 1024 UTF-8 bytes on a character boundary.
    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = ErrorFrame.shortened(message)
    }

    public var description: String { "\(code): \(message)" }

    var payloadSize: Int { 2 + wireStringSize(message) }

    func validate() throws {
        try checkLength(message, max: WireLimits.maxTextBytes, message: .error, field: "message")
    }

    private static func shortened(_ message: String) -> String {
        guard message.utf8.count > preferredMaxMessageBytes else { return message }
        var out = ""
        var used = 0
        for ch in message {
            let n = ch.utf8.count
            if used + n > preferredMaxMessageBytes { break }
            out.append(ch)
            used += n
        }
        return out
    }
}

extension PayloadReader {
    mutating func readErrorFrame() throws -> ErrorFrame {
        let code = ErrorCode(rawValue: try integer("code", as: UInt16.self))
        var frame = ErrorFrame(code: code, message: "")
        frame.message = try string("message", maxBytes: WireLimits.maxTextBytes)
        return frame
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeErrorFrame(_ error: ErrorFrame) -> Int {
        writeInteger(error.code.rawValue) + writeWireString(error.message)
    }
}
