#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict JSON reader (RFC 8259) for request bodies from the network: limits nesting depth,
/// the number of values and the length of strings, rejects duplicate keys, and reports the byte
/// offset of what is wrong. Numbers are read by the C library's correctly rounded `strtod`.
public struct JSONReader {
    /// Limits on one document.
    public struct Limits: Sendable {
        /// Deepest nesting of arrays and objects.
        public var maxDepth: Int
        /// Most values (scalars, arrays and objects together) in the document.
        public var maxValues: Int
        /// Longest string, in bytes of UTF-8.
        public var maxStringBytes: Int

        public init(maxDepth: Int = 32, maxValues: Int = 1 << 22, maxStringBytes: Int = 1 << 16) {
            self.maxDepth = maxDepth; self.maxValues = maxValues; self.maxStringBytes = maxStringBytes
        }
    }

    /// What is wrong with a document, and where (byte offset).
    public struct SyntaxError: Error, Equatable, CustomStringConvertible, Sendable {
        public var offset: Int
        public var message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// Parses one JSON value surrounded by optional whitespace.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: Limits = Limits()) throws(SyntaxError) -> JSONValue {
        var p = Parser(bytes: bytes, limits: limits)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.position == bytes.count else { throw p.error("unexpected data after the JSON value") }
        return v
    }

    /// Parses `text` (for tests and small documents).
    public static func parse(_ text: String, limits: Limits = Limits()) throws(SyntaxError) -> JSONValue {
        let utf8 = Array(text.utf8)
        let result: Result<JSONValue, SyntaxError> = utf8.withUnsafeBytes { b in
            do throws(SyntaxError) { return .success(try parse(b, limits: limits)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let limits: Limits
        var position = 0
        var values = 0

        func error(_ message: String) -> SyntaxError { SyntaxError(offset: position, message: message) }

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipWhitespace() {
            while position < bytes.count {
                let c = bytes[position]
                guard c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 else { return }
                position += 1
            }
        }

        mutating func expect(_ c: UInt8) throws(SyntaxError) {
            guard peek == c else {
                throw error(peek == nil ? "unexpected end of input, expected '\(Character(Unicode.Scalar(c)))'"
                                        : "expected '\(Character(Unicode.Scalar(c)))'")
            }
            position += 1
        }

        mutating func value(depth: Int) throws(SyntaxError) -> JSONValue {
            values += 1
            guard values <= limits.maxValues else { throw error("more than \(limits.maxValues) values") }
            guard let c = peek else { throw error("unexpected end of input, expected a value") }
            switch c {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default:
                throw error(c < 0x80 && c >= 0x20 ? "unexpected character '\(Character(Unicode.Scalar(c)))'" : "unexpected byte \(c)")
            }
        }

        mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let start = position
            for i in 0..<word.utf8CodeUnitCount {
                guard peek == word.utf8Start[i] else { position = start; throw error("invalid literal, expected '\(word)'") }
                position += 1
            }
        }

        mutating func object(depth: Int) throws(SyntaxError) -> JSONValue {
            guard depth <= limits.maxDepth else { throw error("nesting deeper than \(limits.maxDepth) levels") }
            try expect(UInt8(ascii: "{"))
            var members: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if peek == UInt8(ascii: "}") { position += 1; return .object(members) }
            while true {
                skipWhitespace()
                let keyOffset = position
                guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                if members.contains(where: { $0.key == key }) { throw SyntaxError(offset: keyOffset, message: "duplicate key \"\(key)\"") }
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                members.append((key, try value(depth: depth)))
                skipWhitespace()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> JSONValue {
            guard depth <= limits.maxDepth else { throw error("nesting deeper than \(limits.maxDepth) levels") }
            try expect(UInt8(ascii: "["))
            var elements: [JSONValue] = []
            skipWhitespace()
            if peek == UInt8(ascii: "]") { position += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth))
                skipWhitespace()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(elements)
            }
        }

        /// A number in JSON's grammar, converted by `strtod` (correctly rounded); too large: an error.
        mutating func number() throws(SyntaxError) -> Double {
            let start = position
            if peek == UInt8(ascii: "-") { position += 1 }
            func digits() -> Int {
                let from = position
                while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { position += 1 }
                return position - from
            }
            let first = peek
            let whole = digits()
            guard whole > 0 else { throw error("a number needs digits") }
            if first == UInt8(ascii: "0") && whole > 1 { position = start; throw error("a number may not start with 0 followed by digits") }
            if peek == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw error("a fraction needs digits after '.'") }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                position += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("an exponent needs digits") }
            }
            let length = position - start
            guard length <= 64 else { position = start; throw error("a number of \(length) characters (at most 64)") }
            var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
            let v = withUnsafeMutableBytes(of: &buffer) { b -> Double in
                b.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
                return strtod(b.baseAddress!.assumingMemoryBound(to: CChar.self), nil)
            }
            guard v.isFinite else { position = start; throw error("number out of range") }
            return v
        }

        mutating func string() throws(SyntaxError) -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while true {
                guard let c = peek else { throw error("unterminated string") }
                guard out.count <= limits.maxStringBytes else { throw error("a string longer than \(limits.maxStringBytes) bytes") }
                position += 1
                switch c {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw error("a string that is not valid UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw error("unterminated escape") }
                    position += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0c)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "r"): out.append(0x0d)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard peek == UInt8(ascii: "\\") else { throw error("a lone high surrogate") }
                            position += 1
                            guard peek == UInt8(ascii: "u") else { throw error("a lone high surrogate") }
                            position += 1
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw error("a high surrogate without its low one") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw error("a lone low surrogate")
                        }
                        out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default: throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                    }
                default:
                    guard c >= 0x20 else { throw error("a control character in a string") }
                    out.append(c)
                }
            }
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let c = peek else { throw error("unterminated \\u escape") }
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw error("a \\u escape needs four hex digits")
                }
                v = v << 4 | d
                position += 1
            }
            return v
        }
    }
}
