/// Writes JSON text into a byte array: strings escaped as RFC 8259 requires, floats in the
/// shortest form that reads back to the same value.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0a: raw("\\n")
            case 0x0d: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(c >> 4)], hex[Int(c & 15)]])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A finite float (non-finite values, which JSON cannot hold, are written as null).
    public mutating func number(_ v: Float) {
        guard v.isFinite else { raw("null"); return }
        bytes.append(contentsOf: v.description.utf8)
    }

    public mutating func number(_ v: Double) {
        guard v.isFinite else { raw("null"); return }
        if v == v.rounded(), abs(v) < 1e15 { bytes.append(contentsOf: String(Int64(v)).utf8) } else { bytes.append(contentsOf: v.description.utf8) }
    }

    public mutating func number(_ v: Int) { bytes.append(contentsOf: String(v).utf8) }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case .object(let members):
            raw("{")
            for (i, m) in members.enumerated() {
                if i > 0 { raw(",") }
                string(m.key); raw(":"); value(m.value)
            }
            raw("}")
        case .array(let items):
            raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { raw(",") }
                value(item)
            }
            raw("]")
        case .string(let s): string(s)
        case .number(let n): number(n)
        case .bool(let b): if b { raw("true") } else { raw("false") }
        case .null: raw("null")
        }
    }
}
