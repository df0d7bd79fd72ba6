import Foundation

/// Escaping and number formatting for the HTML report. Every string the report writes into
/// markup goes through `escape`, and every number through one of the formatters here, so that
/// the output is the same on every machine and never carries `nan` or `inf` into an attribute.
enum HTMLText {
    /// `s` safe as element text and as a double- or single-quoted attribute value.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\u{0}"..."\u{8}", "\u{B}", "\u{C}", "\u{E}"..."\u{1F}", "\u{7F}": out += "\u{FFFD}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// An SVG coordinate or length: at most one decimal, no trailing `.0`, and `0` for a value
    /// that is not finite.
    static func coordinate(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 10).rounded() / 10
        if r == r.rounded() { return String(Int(r)) }
        return String(format: "%.1f", r)
    }

    /// `v` with `digits` decimals, or `–` when it is not finite.
    static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "–" }
        let s = String(format: "%.\(digits)f", v)
        return s == "-" + String(format: "%.\(digits)f", 0.0) ? String(format: "%.\(digits)f", 0.0) : s
    }

    /// A fraction as a percentage: `0.9123` → `91.23%`.
    static func percent(_ fraction: Double, _ digits: Int = 1) -> String {
        guard fraction.isFinite else { return "–" }
        return fixed(100 * fraction, digits) + "%"
    }

    /// An integer with thousands separators: `10000` → `10,000`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    /// A value with about three significant digits, for axis ticks and labels: `0.25`, `1.5`,
    /// `42`, `1,250`.
    static func compact(_ v: Double) -> String {
        guard v.isFinite else { return "–" }
        let a = abs(v)
        if a >= 100 || a == a.rounded() && a < 1e15 { return grouped(Int(v.rounded())) }
        let digits = a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 4
        var s = String(format: "%.\(digits)f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }
}
