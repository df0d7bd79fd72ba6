import Foundation

/// A NumPy `.npy` array (format versions 1 to 3, C order, little-endian): its shape and its
/// values as floats. Reads `<f4`, `<f8`, `|u1`, `<i4` and `<i8`; writes `<f4`.
public struct NPYArray: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]
    /// The stored data type as NumPy names it (`<f4`, `|u1`, …); written arrays are `<f4`.
    public var dtype: String = "<f4"

    public init(shape: [Int], values: [Float], dtype: String = "<f4") {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(shape.reduce(1, *)) values")
        self.shape = shape; self.values = values; self.dtype = dtype
    }

    /// Whether the stored values were integers (bytes or `int32`/`int64`).
    public var isInteger: Bool { !dtype.hasSuffix("f4") && !dtype.hasSuffix("f8") }

    /// Why an array cannot be read.
    public struct Error: Swift.Error, CustomStringConvertible {
        public var file: String
        public var reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// The largest array read, in elements.
    public static let maxElements = 1 << 31

    /// Reads `bytes`, the contents of `file` (named in errors).
    public static func decode(_ bytes: [UInt8], file: String) throws -> NPYArray {
        func fail(_ reason: String) -> Error { Error(file: file, reason: reason) }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("not a .npy file (no \\x93NUMPY magic)") }
        let major = bytes[6]
        let headerLength: Int, start: Int
        switch major {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }; start = 12
        default: throw fail("format version \(major) is not supported")
        }
        guard start + headerLength <= bytes.count else { throw fail("truncated header (\(headerLength) bytes announced)") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        guard let descr = field(header, "descr"), let order = field(header, "fortran_order"), let shapeText = field(header, "shape") else {
            throw fail("header lacks 'descr', 'fortran_order' or 'shape': \(header.prefix(120))")
        }
        guard order == "False" else { throw fail("Fortran-ordered arrays are not supported (save with C order)") }
        let type = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        let width: Int
        switch type {
        case "<f4", "<i4": width = 4
        case "<f8", "<i8": width = 8
        case "|u1", "<u1", "|i1": width = 1
        default: throw fail("data type '\(type)' is not supported (float32, float64, uint8, int32, int64)")
        }
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw fail("bad shape '\(shapeText)'") }
            shape.append(v)
        }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= maxElements else { throw fail("shape \(shape) holds more than \(maxElements) elements") }
            count = p
        }
        let dataStart = start + headerLength
        guard bytes.count - dataStart == count * width else {
            throw fail("holds \(bytes.count - dataStart) bytes of data, \(count * width) expected for shape \(shape) of '\(type)'")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let b = raw.baseAddress! + dataStart
            for i in 0..<count {
                switch type {
                case "<f4": values[i] = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                case "<f8": values[i] = Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
                case "<i4": values[i] = Float(Int32(littleEndian: b.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case "<i8": values[i] = Float(Int64(littleEndian: b.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                case "|i1": values[i] = Float(b.load(fromByteOffset: i, as: Int8.self))
                default: values[i] = Float(b.load(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
        return NPYArray(shape: shape, values: values, dtype: type)
    }

    /// Reads a `.npy` file.
    public static func read(_ url: URL) throws -> NPYArray {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw Error(file: url.path, reason: "cannot read the file") }
        return try decode([UInt8](data), file: url.path)
    }

    /// The `.npy` bytes of this array as float32 (format 1.0).
    public func encoded() -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        out += Array(header.utf8)
        out.reserveCapacity(out.count + values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    /// The value of `key` in a header dictionary (`'key': value`), up to the next top-level comma.
    private static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[r.upperBound...].drop { $0 == " " || $0 == ":" }
        var depth = 0, value = ""
        while let c = rest.first {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if depth == 0 && (c == "," || c == "}") { break }
            value.append(c)
            rest = rest.dropFirst()
        }
        if value.hasPrefix("(") && !value.hasSuffix(")") { value += ")" }
        return value.trimmingCharacters(in: .whitespaces)
    }
}
