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
    /// The only frame version this implementation speaks.
    public static let version: UInt8 = 1
    /// Header size in bytes.
    public static let size = 20

    /// The message type.
    public var type: MessageType
    /// The request id (0 for connection-level frames).
    public var requestID: UInt64
    /// Number of payload bytes following the header.
    public var payloadLength: UInt32

    /// Creates a header.
    public init(type: MessageType, requestID: UInt64, payloadLength: UInt32) {
        self.type = type
        self.requestID = requestID
        self.payloadLength = payloadLength
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
            if available >= 5 && raw[4] != FrameHeader.version {
                throw WireError.unsupportedVersion(raw[4], supported: FrameHeader.version)
            }
            var type: MessageType? = nil
            if available >= 6 {
                guard let t = MessageType(rawValue: raw[5]) else { throw WireError.unknownMessageType(raw[5]) }
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
            return FrameHeader(type: type, requestID: be(8, as: UInt64.self), payloadLength: length)
        }
    }

    /// Writes a frame header and returns the number of bytes written (always 20).
    @discardableResult
    public mutating func writeFrameHeader(_ header: FrameHeader) -> Int {
        var written = 0
        written += self.writeInteger(FrameHeader.magic)
        written += self.writeInteger(FrameHeader.version)
        written += self.writeInteger(header.type.rawValue)
        written += self.writeInteger(UInt16(0))
        written += self.writeInteger(header.requestID)
        written += self.writeInteger(header.payloadLength)
        return written
    }
}
