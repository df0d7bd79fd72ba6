import BranchyServing
import Testing

/// The strict JSON reader: values, numbers rounded as strtod rounds them, and every refusal with its offset.
@Suite struct JSONReaderTests {
    @Test func readsEveryKindOfValue() throws {
        let v = try JSONReader.parse(#" {"a": [1, -2.5e3, 0.1], "b": {"c": "x\u00e9\n\ud83d\ude00"}, "d": true, "e": null} "#)
        #expect(v["a"] == .array([.number(1), .number(-2500), .number(0.1)]))
        #expect(v["b"]?["c"] == .string("xé\n😀"))
        #expect(v["d"] == .bool(true) && v["e"] == .null && v["f"] == nil)
    }

    @Test func numbersAreCorrectlyRounded() throws {
        for text in ["0.1", "3.4028234663852886e38", "1e-45", "2.2250738585072014e-308", "9007199254740993", "-0"] {
            #expect(try JSONReader.parse(text) == .number(Double(text)!), "\(text)")
        }
    }

    @Test(arguments: [
        ("", 0, "unexpected end of input"), ("[1,]", 3, "unexpected character ']'"), ("{\"a\":1,\"a\":2}", 7, "duplicate key \"a\""),
        ("01", 0, "may not start with 0"), ("1.", 2, "a fraction needs digits"), ("1e", 2, "an exponent needs digits"),
        ("1e400", 0, "number out of range"), ("\"a\u{1}\"", 3, "a control character"), ("\"\\x\"", 3, "invalid escape"),
        ("\"\\ud800\"", 7, "a lone high surrogate"), ("[1] 2", 4, "unexpected data after"), ("nul", 0, "invalid literal"),
        ("\"\\u12\"", 5, "four hex digits"),
    ])
    func refusalsSayWhatAndWhere(text: String, offset: Int, message: String) {
        #expect { try JSONReader.parse(text) } throws: { e in
            guard let e = e as? JSONReader.SyntaxError else { return false }
            return e.offset == offset && e.message.contains(message)
        }
    }

    @Test func limitsHold() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect { try JSONReader.parse(deep, limits: .init(maxDepth: 32)) } throws: { "\($0)".contains("nesting deeper than 32") }
        #expect(throws: Never.self) { try JSONReader.parse(deep, limits: .init(maxDepth: 40)) }
        #expect { try JSONReader.parse("[1,2,3,4]", limits: .init(maxValues: 4)) } throws: { "\($0)".contains("more than 4 values") }
        #expect { try JSONReader.parse("\"abcdef\"", limits: .init(maxStringBytes: 4)) } throws: { "\($0)".contains("longer than 4 bytes") }
        #expect { try JSONReader.parse(String(repeating: "1", count: 70)) } throws: { "\($0)".contains("at most 64") }
    }

    @Test func invalidUTF8InAStringIsRefused() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect { try bytes.withUnsafeBytes { try JSONReader.parse($0) } } throws: { "\($0)".contains("not valid UTF-8") }
    }

    @Test func writerOutputReadsBack() throws {
        let v: JSONValue = .object([("s", .string("a\"b\\c\u{1}\n")), ("n", .array([.number(1.5), .number(-3), .number(1e-7)])), ("t", .bool(false)), ("z", .null)])
        var w = JSONWriter()
        w.value(v)
        #expect(try w.bytes.withUnsafeBytes { try JSONReader.parse($0) } == v)
    }
}
