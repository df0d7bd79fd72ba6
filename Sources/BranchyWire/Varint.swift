import NIOCore

/// Unsigned LEB128 integers, used by protocol version 2: seven bits per byte, least significant
/// group first, the high bit set on every byte but the last. A reader accepts only the shortest
/// encoding of a value (no trailing zero groups) and at most ten bytes, so every value has
/// exactly one encoding and sizes computed from values equal sizes read from the wire.
enum Varint {
    /// Bytes the encoding of `value` takes (1...10).
    @inlinable static func size(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// Outcome of decoding a varint from raw bytes.
    enum Peek: Equatable {
        /// The bytes end before the varint does.
        case incomplete
        /// The value and the bytes it took.
        case value(UInt64, size: Int)
        /// More than ten bytes, a value above 2^64 - 1, or a non-shortest encoding.
        case malformed(String)
    }

    /// Decodes a varint at `offset` in `raw` without consuming anything.
    static func peek(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Peek {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var i = offset
        while i < raw.count {
            let byte = raw[i]
            let group = UInt64(byte & 0x7F)
            if shift == 63 && group > 1 { return .malformed("a value above 2^64 - 1") }
            value |= group << shift
            i += 1
            if byte & 0x80 == 0 {
                if byte == 0 && i - offset > 1 { return .malformed("a non-shortest encoding (trailing zero group)") }
                return .value(value, size: i - offset)
            }
            shift += 7
            if shift > 63 { return .malformed("more than 10 bytes") }
        }
        return .incomplete
    }
}

extension ByteBuffer {
    /// Writes `value` as an unsigned LEB128 varint; returns the bytes written.
    @discardableResult
    mutating func writeVarint(_ value: UInt64) -> Int {
        var v = value
        var written = 0
        while v >= 0x80 {
            written += writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        return written + writeInteger(UInt8(v))
    }
}

extension PayloadReader {
    /// Reads an unsigned LEB128 varint (shortest form, at most ten bytes).
    mutating func varint(_ field: String) throws -> UInt64 {
        let peeked = buffer.withUnsafeReadableBytes { Varint.peek($0, at: 0) }
        switch peeked {
        case .incomplete:
            throw truncated(field, needed: remaining + 1)
        case .malformed(let why):
            throw invalid(field, value: why, expected: "a varint of at most 10 bytes in its shortest form")
        case .value(let v, let size):
            buffer.moveReaderIndex(forwardBy: size)
            return v
        }
    }

    /// Reads a varint and checks it against an upper bound.
    mutating func varint(_ field: String, max: UInt64) throws -> UInt64 {
        let v = try varint(field)
        guard v <= max else { throw invalid(field, value: "\(v)", expected: "at most \(max)") }
        return v
    }
}
