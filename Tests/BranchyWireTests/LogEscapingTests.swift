import Testing
@testable import BranchyWire

@Suite("Escaping untrusted text for logs")
struct LogEscapingTests {
    @Test(arguments: [
        ("plain-name_1.x", "plain-name_1.x"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\u{1B}[31mred", "\\u{1B}[31mred"),
        ("nul\u{0}end", "nul\\u{0}end"),
        ("back\\slash", "back\\\\slash"),
        ("c1\u{85}line", "c1\\u{85}line"),
        ("sep\u{2028}x", "sep\\u{2028}x"),
        ("bidi\u{202E}x", "bidi\\u{202E}x"),
        ("Zürich", "Zürich"),
    ])
    func escapes(input: String, expected: String) {
        #expect(input.escapedForLog() == expected)
    }

    @Test func longTextIsCut() {
        let text = String(repeating: "a", count: 300)
        #expect(text.escapedForLog(limit: 10) == "aaaaaaaaaa…(290 more)")
    }

    @Test func escapedTextHasNoControlCharacters() {
        let all = String(String.UnicodeScalarView((0..<0x200).compactMap(Unicode.Scalar.init)))
        let escaped = all.escapedForLog(limit: 1_000)
        #expect(!escaped.unicodeScalars.contains { $0.properties.generalCategory == .control })
    }
}
