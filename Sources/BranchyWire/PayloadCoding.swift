import NIOCore

/// Reads the fields of one payload, turning every short read into a
/// ``WireError/truncatedPayload(message:field:needed:remaining:)`` that names the field.
struct PayloadReader {
    var buffer: ByteBuffer
    let message: MessageType

    init(buffer: ByteBuffer, message: MessageType) {
        self.buffer = buffer
        self.message = message
    }

    var remaining: Int { buffer.readableBytes }

    mutating func integer<T: FixedWidthInteger>(_ field: String, as: T.Type = T.self) throws -> T {
        guard let value = buffer.readInteger(as: T.self) else {
            throw truncated(field, needed: MemoryLayout<T>.size)
        }
        return value
    }

    /// A big-endian IEEE 754 binary32.
    mutating func float(_ field: String) throws -> Float {
        Float(bitPattern: try integer(field, as: UInt32.self))
    }

    mutating func bytes(_ field: String, count: Int) throws -> [UInt8] {
        guard count <= remaining, let bytes = buffer.readBytes(length: count) else {
            throw truncated(field, needed: count)
        }
        return bytes
    }

    /// A UInt16 length followed by that many bytes of valid UTF-8.
    mutating func string(_ field: String, maxBytes: Int) throws -> String {
        let length = Int(try integer(field + ".length", as: UInt16.self))
        if length > maxBytes {
            throw invalid(field + ".length", value: "\(length)", expected: "at most \(maxBytes) bytes")
        }
        guard length <= remaining, let view = buffer.readSlice(length: length) else {
            throw truncated(field, needed: length)
        }
        guard let string = view.readableBytesView.withContiguousStorageIfAvailable({
            String(validating: $0, as: UTF8.self)
        }) ?? String(validating: Array(view.readableBytesView), as: UTF8.self) else {
            throw invalid(field, value: "\(length) bytes", expected: "valid UTF-8")
        }
        return string
    }

    /// Throws if any bytes are left after the last field.
    func finish() throws {
        if remaining > 0 {
            throw WireError.trailingPayloadBytes(message: message, count: remaining)
        }
    }

    func truncated(_ field: String, needed: Int) -> WireError {
        .truncatedPayload(message: message, field: field, needed: needed, remaining: remaining)
    }

    func invalid(_ field: String, value: String, expected: String) -> WireError {
        .invalidValue(message: message, field: field, value: value, expected: expected)
    }
}

/// The UTF-8 bytes of `string` that fit a UInt16 length prefix, cut at a scalar boundary.
func wireUTF8(_ string: String) -> ArraySlice<UInt8> {
    let utf8 = Array(string.utf8)
    guard utf8.count > WireLimits.maxTextBytes else { return utf8[...] }
    var end = WireLimits.maxTextBytes
    while end > 0 && (utf8[end] & 0xC0) == 0x80 { end -= 1 }
    return utf8[..<end]
}

/// Encoded size of a length-prefixed string.
func wireStringSize(_ string: String) -> Int {
    let count = string.utf8.count
    return 2 + (count <= WireLimits.maxTextBytes ? count : wireUTF8(string).count)
}

/// Checks a string's length against a protocol limit (used by `validate`).
func checkLength(_ string: String, max: Int, message: MessageType, field: String) throws {
    let count = string.utf8.count
    if count > max {
        throw WireError.invalidValue(message: message, field: field + ".length",
                                     value: "\(count)", expected: "at most \(max) bytes")
    }
}

/// Checks that a float field is finite (used by `validate` and by the reader).
func checkFinite(_ value: Float, message: MessageType, field: String) throws {
    if !value.isFinite {
        throw WireError.invalidValue(message: message, field: field, value: "\(value)", expected: "a finite number")
    }
}

extension ByteBuffer {
    /// Writes a UInt16 length and the UTF-8 bytes; longer strings are cut to 65535 bytes.
    @discardableResult
    mutating func writeWireString(_ string: String) -> Int {
        if string.utf8.count <= WireLimits.maxTextBytes {
            let lengthBytes = self.writeInteger(UInt16(string.utf8.count))
            return lengthBytes + self.writeString(string)
        }
        let bytes = wireUTF8(string)
        return self.writeInteger(UInt16(bytes.count)) + self.writeBytes(bytes)
    }

    /// Writes a big-endian IEEE 754 binary32.
    @discardableResult
    mutating func writeWireFloat(_ value: Float) -> Int {
        self.writeInteger(value.bitPattern)
    }
}
