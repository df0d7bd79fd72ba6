/// A strict, minimal JSON reader (RFC 8259) for safetensors headers and model descriptions.
///
/// Unlike `JSONSerialization` it keeps integers apart from fractions and booleans, which the
/// header's `shape` and `data_offsets` need, keeps the text of every other number for error
/// messages, behaves the same on every platform, rejects duplicate keys, limits nesting
/// depth, and reports the byte offset of a syntax error.
enum StrictJSON: Equatable {
    case object([String: StrictJSON])
    case array([StrictJSON])
    case string(String)
    /// A number written without fraction or exponent that fits in `Int`.
    case integer(Int)
    /// Any other number, with its text as written.
    case number(Double, text: String)
    case bool(Bool)
    case null

    /// A syntax error at a byte offset into the parsed text.
    struct SyntaxError: Error, CustomStringConvertible {
        var offset: Int
        var message: String
        var description: String { "\(message) at byte \(offset)" }
    }

    /// Short name of the value's JSON type, for error messages.
    var typeName: String {
        switch self {
        case .object: return "object"
        case .array: return "array"
        case .string: return "string"
        case .integer, .number: return "number"
        case .bool: return "boolean"
        case .null: return "null"
        }
    }

    /// The value as an error message shows it: scalars as written (long strings shortened),
    /// containers by their kind.
    var shown: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string(let s): return SafeTensors.jsonString(s.count > 40 ? String(s.prefix(40)) + "…" : s)
        case .integer(let v): return "\(v)"
        case .number(_, let text): return text
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        }
    }

    /// Parses one JSON value surrounded by optional whitespace.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> StrictJSON {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var position = 0
        static let maxDepth = 64

        func error(_ message: String) -> SyntaxError { SyntaxError(offset: position, message: message) }

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipWhitespace() {
            while let c = peek, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { position += 1 }
        }

        mutating func expect(_ c: UInt8) throws {
            guard peek == c else {
                throw error(peek == nil ? "unexpected end of input, expected '\(Character(Unicode.Scalar(c)))'"
                                        : "expected '\(Character(Unicode.Scalar(c)))'")
            }
            position += 1
        }

        mutating func value(depth: Int) throws -> StrictJSON {
            guard depth <= Parser.maxDepth else { throw error("nesting deeper than \(Parser.maxDepth) levels") }
            guard let c = peek else { throw error("unexpected end of input, expected a value") }
            switch c {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected character '\(Character(Unicode.Scalar(c)))'")
            }
        }

        mutating func literal(_ word: String) throws {
            for c in word.utf8 {
                guard peek == c else { throw error("invalid literal, expected '\(word)'") }
                position += 1
            }
        }

        mutating func object(depth: Int) throws -> StrictJSON {
            try expect(UInt8(ascii: "{"))
            var members: [String: StrictJSON] = [:]
            skipWhitespace()
            if peek == UInt8(ascii: "}") { position += 1; return .object(members) }
            while true {
                skipWhitespace()
                let keyOffset = position
                guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                guard members[key] == nil else {
                    throw SyntaxError(offset: keyOffset, message: "duplicate key \"\(key)\"")
                }
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                members[key] = try value(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws -> StrictJSON {
            try expect(UInt8(ascii: "["))
            var elements: [StrictJSON] = []
            skipWhitespace()
            if peek == UInt8(ascii: "]") { position += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth + 1))
                skipWhitespace()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(elements)
            }
        }

        mutating func number() throws -> StrictJSON {
            let start = position
            var integral = true
            if peek == UInt8(ascii: "-") { position += 1 }
            guard let first = peek, (0x30...0x39).contains(first) else { throw error("expected a digit") }
            position += 1
            if first != 0x30 { digits() }
            if peek == UInt8(ascii: ".") {
                integral = false
                position += 1
                guard let c = peek, (0x30...0x39).contains(c) else { throw error("expected a digit after '.'") }
                digits()
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                integral = false
                position += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
                guard let c = peek, (0x30...0x39).contains(c) else { throw error("expected a digit in the exponent") }
                digits()
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            if integral, let value = Int(text) { return .integer(value) }
            guard let value = Double(text) else { throw SyntaxError(offset: start, message: "invalid number '\(text)'") }
            return .number(value, text: text)
        }

        mutating func digits() {
            while let c = peek, (0x30...0x39).contains(c) { position += 1 }
        }

        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            var scalars = String.UnicodeScalarView()
            var utf8: [UInt8] = []
            func flush() {
                if !utf8.isEmpty { scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars); utf8.removeAll() }
            }
            while true {
                guard let c = peek else { throw error("unterminated string") }
                position += 1
                switch c {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    guard let e = peek else { throw error("unterminated string") }
                    position += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"): scalars.append(try unicodeEscape())
                    default: throw SyntaxError(offset: position - 2, message: "invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                    }
                case 0x00..<0x20:
                    throw SyntaxError(offset: position - 1, message: "unescaped control character in string")
                default:
                    utf8.append(c)
                }
            }
        }

        /// Reads the hex digits after `\u`, combining a surrogate pair if present.
        mutating func unicodeEscape() throws -> Unicode.Scalar {
            let high = try hex4()
            if (0xD800..<0xDC00).contains(high) {
                guard peek == UInt8(ascii: "\\") else { throw error("unpaired surrogate in \\u escape") }
                position += 1
                guard peek == UInt8(ascii: "u") else { throw error("unpaired surrogate in \\u escape") }
                position += 1
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in \\u escape") }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
            }
            guard let scalar = Unicode.Scalar(high) else { throw error("unpaired surrogate in \\u escape") }
            return scalar
        }

        mutating func hex4() throws -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let c = peek else { throw error("unterminated \\u escape") }
                let digit: UInt32
                switch c {
                case 0x30...0x39: digit = UInt32(c - 0x30)
                case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
                default: throw error("invalid hex digit in \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }
    }
}
