/// A frame that violates the Branchy wire protocol.
///
/// Every case names the offending field and the values involved so that a log line is
/// enough to tell what a peer sent. After any `WireError` from the decoder, framing on
/// the connection can no longer be trusted: the connection is answered with an
/// ``ErrorCode/badFrame`` (or the more specific code from ``errorCode``) and closed.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The first four bytes were not `"BRNY"` (`0x42524E59`).
    case badMagic(UInt32)
    /// The header's version byte is not one this implementation speaks.
    case unsupportedVersion(UInt8, supported: UInt8)
    /// A full header's version differs from the version the connection's hello fixed.
    case versionMismatch(UInt8, negotiated: UInt8)
    /// Before the hello, a 20-byte header of version 2 on a frame other than `hello` or
    /// `helloAck`: every other frame sent before the hello uses version 1's header.
    case versionBeforeHello(UInt8, type: MessageType)
    /// A compact header's first byte does not have the marker nibble `0xA`.
    case badCompactMarker(UInt8)
    /// A varint in a compact header is malformed.
    case badVarint(field: String, String)
    /// The header's type byte names no known message.
    case unknownMessageType(UInt8)
    /// The reserved flags field was not zero.
    case reservedFlagsSet(UInt16)
    /// The header announces a payload larger than the receiver accepts. Raised from the
    /// header alone, before the payload is read or any memory is reserved for it.
    case payloadTooLarge(length: UInt32, limit: Int)
    /// The payload ended before `field` could be read: the length field lied (too short).
    case truncatedPayload(message: MessageType, field: String, needed: Int, remaining: Int)
    /// Bytes were left in the payload after the last field: the length field lied (too long).
    case trailingPayloadBytes(message: MessageType, count: Int)
    /// A field was fully read but its value is not allowed.
    case invalidValue(message: MessageType, field: String, value: String, expected: String)
    /// The stream ended (EOF) in the middle of a frame.
    case truncatedFrame(buffered: Int, needed: Int?)

    /// The error code a receiver reports to the peer for this violation.
    public var errorCode: ErrorCode {
        switch self {
        case .unsupportedVersion:
            return .unsupportedVersion
        case .invalidValue(message: .infer, field: let field, value: _, expected: _)
            where field.hasPrefix("tensor"):
            return .badTensor
        default:
            return .badFrame
        }
    }

    public var description: String {
        switch self {
        case .badMagic(let magic):
            return "bad magic \(hex(magic)), expected \(hex(FrameHeader.magic)) (\"BRNY\")"
        case .unsupportedVersion(let v, let supported):
            return "unsupported frame version \(v), this peer speaks versions 1 to \(supported)"
        case .versionMismatch(let v, let negotiated):
            return "frame of version \(v) on a connection whose hello fixed version \(negotiated)"
        case .versionBeforeHello(let v, let type):
            return "a \(type) frame of version \(v) before the hello; before it only hello and helloAck may use version \(v), other frames use version 1"
        case .badCompactMarker(let b):
            return "bad compact frame marker \(hex(b)), expected 0xA1...0xA8 on a version 2 connection"
        case .badVarint(let field, let why):
            return "compact header field '\(field)' is malformed: \(why)"
        case .unknownMessageType(let t):
            return "unknown message type \(t), known types are 1...6 (version 2 adds 7 and 8 in compact frames)"
        case .reservedFlagsSet(let flags):
            return "reserved flags field is \(hex(flags)), must be 0"
        case .payloadTooLarge(let length, let limit):
            return "payload length \(length) exceeds the limit of \(limit) bytes"
        case .truncatedPayload(let message, let field, let needed, let remaining):
            return "\(message) payload ends inside field '\(field)': needs \(needed) bytes, \(remaining) remain"
        case .trailingPayloadBytes(let message, let count):
            return "\(message) payload has \(count) unread trailing bytes"
        case .invalidValue(let message, let field, let value, let expected):
            return "\(message) field '\(field)' has invalid value \(value), expected \(expected)"
        case .truncatedFrame(let buffered, let needed):
            if let needed {
                return "connection closed inside a frame: \(buffered) of \(needed) bytes received"
            }
            return "connection closed inside a frame header: \(buffered) of \(FrameHeader.size) bytes received"
        }
    }
}

private func hex<T: FixedWidthInteger>(_ v: T) -> String {
    let digits = String(v, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, T.bitWidth / 4 - digits.count)) + digits
}
