extension String {
    /// This text made safe to write into a log line or an error message: control characters
    /// (newlines, ANSI escapes, NUL, C1 controls), line and paragraph separators, bidirectional
    /// overrides and backslashes are written as escapes (`\n`, `\u{1B}`, `\\`), and text longer
    /// than `limit` characters is cut with a note of how much was left out.
    ///
    /// Use it for every string a peer or a file controls (node names from `hello`, error texts
    /// from upstream) before it reaches a log: a peer can then never forge a log line.
    public func escapedForLog(limit: Int = 128) -> String {
        var out = ""
        var count = 0
        for scalar in unicodeScalars {
            if count == limit {
                let rest = unicodeScalars.count - limit
                out += "…(\(rest) more)"
                break
            }
            count += 1
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                    || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
