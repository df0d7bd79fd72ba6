import NIOCore

/// The fixed 20-byte header in front of every frame, all fields big-endian:
///
/// | offset | size | field          |
/// |--------|------|----------------|
/// | 0      | 4    | magic `BRNY`   |
/// | 4      | 1    | version (1)    |
/// | 5      | 1    | message type   |
/// | 6      | 2    | flags (0)      |
/// | 8      | 8    | request id     |
/// | 16     | 4    | payload length |
public struct FrameHeader: Hashable, Sendable {
    /// `"BRNY"` read as a big-endian `UInt32`.
    public static let magic: UInt32 = 0x4252_4E59
    /// The version written by default (version-1 connections, and connection errors before a hello).
    public static let version: UInt8 = 1
    /// Header size in bytes.
    public static let size = 20
    /// First byte of a compact (version 2) header: high nibble `0xA`, the type in the low nibble.
    public static let compactMarker: UInt8 = 0xA0

    /// The message type.
    public var type: MessageType
    /// The request id (0 for connection-level frames).
    public var requestID: UInt64
    /// Number of payload bytes following the header.
    public var payloadLength: UInt32
    /// The protocol version the payload is laid out in.
    public var version: UInt8
    /// Bytes the header took on the wire: 20, or 3 to 16 for a compact header.
    public var size: Int

    /// Creates a header.
    public init(type: MessageType, requestID: UInt64, payloadLength: UInt32, version: UInt8 = FrameHeader.version,
                size: Int = FrameHeader.size) {
        self.type = type
        self.requestID = requestID
        self.payloadLength = payloadLength
        self.version = version
        self.size = size
    }

    /// Size of a compact header for these values.
    public static func compactSize(requestID: UInt64, payloadLength: Int) -> Int {
        1 + Varint.size(requestID) + Varint.size(UInt64(payloadLength))
    }
}

extension ByteBuffer {
    /// Parses a frame header without consuming anything.
    ///
    /// Each field is checked as soon as its bytes are present, so a wrong magic is
    /// reported after 4 bytes and an oversized length after 20, before any payload is
    /// buffered or allocated.
    ///
    /// - Returns: the header, or `nil` if fewer than 20 bytes are readable.
    /// - Throws: ``WireError`` for a bad magic, version, type, flags or length.
    public func peekFrameHeader(maxPayload: Int) throws -> FrameHeader? {
        try peekFrameHeader(maxPayload: maxPayload, required: nil)
    }

    /// Parses a 20-byte header whose version byte must be `required` (when given).
    func peekFrameHeader(maxPayload: Int, required: UInt8?) throws -> FrameHeader? {
        // One pass over the raw bytes: this runs on every read event while a frame is
        // incomplete, so it avoids a separate bounds-checked accessor call per field.
        try self.withUnsafeReadableBytes { raw -> FrameHeader? in
            func be<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
                T(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
            }
            let available = raw.count
            if available >= 4 {
                let magic = be(0, as: UInt32.self)
                if magic != FrameHeader.magic { throw WireError.badMagic(magic) }
            }
            if available >= 5 && !FrameDialect.supportedVersions.contains(raw[4]) {
                throw WireError.unsupportedVersion(raw[4], supported: FrameDialect.supportedVersions.upperBound)
            }
            if available >= 5, let required, raw[4] != required {
                throw WireError.versionMismatch(raw[4], negotiated: required)
            }
            var type: MessageType? = nil
            if available >= 6 {
                // Types 7 and 8 exist from version 2 on, and only in compact frames.
                guard let t = MessageType(rawValue: raw[5]), t.rawValue <= 6 else { throw WireError.unknownMessageType(raw[5]) }
                // Before the hello (no version fixed), only hello and helloAck carry their own version: one
                // encoding per frame, so a frame read re-encodes to the bytes it came in.
                if required == nil, raw[4] != 1, t != .hello, t != .helloAck {
                    throw WireError.versionBeforeHello(raw[4], type: t)
                }
                type = t
            }
            if available >= 8 {
                let flags = be(6, as: UInt16.self)
                if flags != 0 { throw WireError.reservedFlagsSet(flags) }
            }
            guard available >= FrameHeader.size, let type else { return nil }
            let length = be(16, as: UInt32.self)
            if UInt64(length) > UInt64(maxPayload) {
                throw WireError.payloadTooLarge(length: length, limit: maxPayload)
            }
            return FrameHeader(type: type, requestID: be(8, as: UInt64.self), payloadLength: length, version: raw[4])
        }
    }

    /// Parses a compact (version 2) header without consuming anything: a marker byte `0xA0 | type`,
    /// the request id and the payload length as varints. Each part is checked as soon as its bytes
    /// are present; the length is refused from the header alone when above `maxPayload`.
    ///
    /// - Returns: the header, or `nil` while incomplete.
    public func peekCompactFrameHeader(maxPayload: Int) throws -> FrameHeader? {
        try self.withUnsafeReadableBytes { raw -> FrameHeader? in
            guard raw.count >= 1 else { return nil }
            let first = raw[0]
            guard first & 0xF0 == FrameHeader.compactMarker else { throw WireError.badCompactMarker(first) }
            guard let type = MessageType(rawValue: first & 0x0F) else { throw WireError.unknownMessageType(first & 0x0F) }
            let id: UInt64, idSize: Int
            switch Varint.peek(raw, at: 1) {
            case .incomplete: return nil
            case .malformed(let why): throw WireError.badVarint(field: "requestID", why)
            case .value(let v, let n): (id, idSize) = (v, n)
            }
            switch Varint.peek(raw, at: 1 + idSize) {
            case .incomplete:
                // A length that already needs more groups than the limit allows is refused early.
                let have = raw.count - 1 - idSize
                if have >= Varint.size(UInt64(maxPayload)) + 1 {
                    throw WireError.payloadTooLarge(length: UInt32.max, limit: maxPayload)
                }
                return nil
            case .malformed(let why): throw WireError.badVarint(field: "payloadLength", why)
            case .value(let v, let n):
                guard v <= UInt64(maxPayload) else {
                    throw WireError.payloadTooLarge(length: UInt32(clamping: v), limit: maxPayload)
                }
                return FrameHeader(type: type, requestID: id, payloadLength: UInt32(v), version: 2, size: 1 + idSize + n)
            }
        }
    }

    /// Writes a compact header; returns the bytes written.
    @discardableResult
    public mutating func writeCompactFrameHeader(type: MessageType, requestID: UInt64, payloadLength: Int) -> Int {
        writeInteger(FrameHeader.compactMarker | type.rawValue) + writeVarint(requestID) + writeVarint(UInt64(payloadLength))
    }

    /// Writes a frame header and returns the number of bytes written (always 20).
    @discardableResult
    public mutating func writeFrameHeader(_ header: FrameHeader) -> Int {
        var written = 0
        written += self.writeInteger(FrameHeader.magic)
        written += self.writeInteger(header.version)
        written += self.writeInteger(header.type.rawValue)
        written += self.writeInteger(UInt16(0))
        written += self.writeInteger(header.requestID)
        written += self.writeInteger(header.payloadLength)
        return written
    }
}
