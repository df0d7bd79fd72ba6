import Foundation

/// Reads series out of the Prometheus text exposition format, for the tests of the metrics.
struct MetricsText {
    let text: String

    init(_ text: String) { self.text = text }
    init(_ bytes: [UInt8]) { self.text = String(decoding: bytes, as: UTF8.self) }

    /// The value of the series written exactly as `series` (a name, then its labels in the
    /// order they were made, e.g. `branchy_requests_total{exit="edge-exit",status="answered"}`);
    /// nil when there is no such line.
    func value(_ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// The sum over every series of `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let seriesName = series.split(separator: "{", maxSplits: 1).first.map(String.init) ?? ""
            guard seriesName == name else { continue }
            let have = Self.labels(of: series)
            if labels.allSatisfy({ have[$0.key] == $0.value }) { total += value }
        }
        return total
    }

    /// `{a="x",b="y"}` as a dictionary (values without escapes, as the tests' labels are).
    static func labels(of series: Substring) -> [String: String] {
        guard let open = series.firstIndex(of: "{"), series.last == "}" else { return [:] }
        var out: [String: String] = [:]
        for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: "\",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            out[String(parts[0])] = String(parts[1].drop(while: { $0 == "\"" }).prefix(while: { $0 != "\"" }))
        }
        return out
    }
}
