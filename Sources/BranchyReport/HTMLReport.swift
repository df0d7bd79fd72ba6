import Foundation

/// The device's run as one self-contained HTML page: key figures and four SVG charts (samples
/// and accuracy per exit, bytes per sample per exit and link, the calibration frontier, latency
/// per exit), with inline CSS and no scripts or external resources. The same input gives the
/// same bytes.
public struct HTMLReport: Sendable {
    public var input: Input

    public init(input: Input) {
        self.input = input
    }

    /// The complete HTML document.
    public func render() -> String {
        let e = HTMLText.escape
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(e(input.title))</title>
            <style>
            \(Self.css)
            </style>
            </head>
            <body>
            <h1>\(e(input.title))</h1>

            """
        html += details() + figures() + "<div class=\"charts\">\n"
        html += section(id: "exits", title: "Samples and accuracy per exit",
                        note: "Bars: samples that left at each exit (left axis). Dots: the share of those samples classified right (right axis).",
                        body: Self.exitsChart(input))
        html += section(id: "bytes", title: "Bytes per sample",
                        note: "TLS bytes on the wire, requests and answers, per sample that left at each exit and over all samples, split by link.",
                        body: Self.bytesChart(input) + linkTable())
        html += section(id: "frontier", title: "Calibration frontier",
                        note: input.calibration.map { "Goal: \($0.goal). Each dot is one threshold combination screened; the ring marks the one chosen, the diamond this run." }
                            ?? "No calibration data: run branchy calibrate to write calibration.json in the model directory, or pass --calibration FILE.",
                        body: Self.frontierChart(input) ?? "")
        html += section(id: "latency", title: "Latency per exit",
                        note: "Share of each exit's samples answered within a time, from the start of the sample on the device to its answer.",
                        body: Self.latencyChart(input))
        html += "</div>\n</body>\n</html>\n"
        return html
    }

    /// Writes the document to `url` as UTF-8.
    public func write(to url: URL) throws {
        try Data(render().utf8).write(to: url, options: .atomic)
    }

    private func details() -> String {
        guard !input.details.isEmpty else { return "" }
        return "<dl class=\"details\">" + input.details.map { "<dt>\(HTMLText.escape($0.label))</dt><dd>\(HTMLText.escape($0.value))</dd>" }.joined()
            + "</dl>\n"
    }

    private func figures() -> String {
        let i = input
        let savings = i.bytesPerSample > 0 ? i.rawOffloadBytesPerSample / i.bytesPerSample : .infinity
        let rate = i.durationSeconds > 0 ? Double(i.samples) / i.durationSeconds : 0
        let cards: [(String, String, String)] = [
            ("samples", HTMLText.grouped(i.samples),
             "\(HTMLText.grouped(i.answered)) answered, \(HTMLText.grouped(i.degraded)) degraded, \(HTMLText.grouped(i.failed)) failed"),
            ("accuracy", HTMLText.percent(i.accuracy, 2), "of all samples"),
            ("bytes per sample", HTMLText.fixed(i.bytesPerSample, 1), "TLS bytes on all links, both ways"),
            ("savings vs raw offload", savings.isFinite ? HTMLText.fixed(savings, 1) + "×" : "all local",
             "raw offload: \(HTMLText.fixed(i.rawOffloadBytesPerSample, 1)) bytes per sample"),
            ("duration", HTMLText.fixed(i.durationSeconds, 2) + " s", "\(HTMLText.fixed(rate, 0)) samples/s"),
            ("latency p50 / p99", "\(HTMLText.compact(i.latencyP50Ms)) / \(HTMLText.compact(i.latencyP99Ms)) ms", "per sample, all exits"),
        ]
        return "<div class=\"figures\">\n" + cards.map { label, value, sub in
            "<div class=\"figure\"><div class=\"figure-label\">\(HTMLText.escape(label))</div>"
                + "<div class=\"figure-value\">\(HTMLText.escape(value))</div><div class=\"figure-sub\">\(HTMLText.escape(sub))</div></div>\n"
        }.joined() + "</div>\n"
    }

    private func linkTable() -> String {
        guard !input.links.isEmpty else { return "" }
        var t = "\n<table class=\"links\"><thead><tr><th>link</th><th>requests</th><th>mean up B</th><th>mean down B</th></tr></thead><tbody>\n"
        for l in input.links {
            t += "<tr><td>\(HTMLText.escape(l.name))</td><td>\(HTMLText.grouped(l.requests))</td>"
                + "<td>\(HTMLText.fixed(l.meanUpBytes, 1))</td><td>\(HTMLText.fixed(l.meanDownBytes, 1))</td></tr>\n"
        }
        return t + "</tbody></table>"
    }

    private func section(id: String, title: String, note: String, body: String) -> String {
        let noteClass = body.isEmpty ? "note empty" : "note"
        return "<section id=\"\(id)\">\n<h2>\(HTMLText.escape(title))</h2>\n<p class=\"\(noteClass)\">\(HTMLText.escape(note))</p>\n"
            + (body.isEmpty ? "" : body + "\n") + "</section>\n"
    }

    static let css = """
        body { font: 14px/1.4 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222; background: #fff; margin: 20px auto; max-width: 1240px; padding: 0 16px; }
        h1 { font-size: 22px; margin: 0 0 8px; }
        h2 { font-size: 17px; margin: 22px 0 4px; }
        .details { display: flex; flex-wrap: wrap; gap: 2px 6px; margin: 0 0 14px; color: #555; }
        .details dt { font-weight: 600; }
        .details dt::after { content: ":"; }
        .details dd { margin: 0 16px 0 0; overflow-wrap: anywhere; }
        .figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 10px; }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px 28px; }
        .charts section { min-width: 0; }
        .figure { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
        .figure-label { font-size: 12px; color: #666; text-transform: uppercase; letter-spacing: .03em; }
        .figure-value { font-size: 20px; font-weight: 600; white-space: nowrap; }
        .figure-sub { font-size: 12px; color: #666; }
        .note { color: #555; margin: 0 0 8px; }
        .note.empty { border: 1px dashed #bbb; border-radius: 6px; padding: 12px; }
        svg.chart { display: block; max-width: 100%; height: auto; font-size: 12px; }
        svg .axis { stroke: #444; stroke-width: 1; }
        svg .grid { stroke: #e4e4e4; stroke-width: 1; }
        svg .tick { fill: #444; font-size: 11px; }
        svg .tick.sub { fill: #888; }
        svg .axis-title { fill: #333; font-size: 12px; font-weight: 600; }
        svg .legend { fill: #333; font-size: 12px; }
        svg .value { fill: #222; font-size: 11px; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
        svg .empty-note { fill: #888; font-size: 14px; }
        svg .legend-swatch.ring, svg .mark.chosen { fill: none; stroke: #222; stroke-width: 2.5; }
        svg .legend-swatch.line, svg .mark.cdf, svg .frontier-line { fill: none; stroke-width: 2.5; }
        svg .mark.point { opacity: .55; }
        svg .mark.point.on-frontier { opacity: 1; }
        svg .mark.run, svg .legend-swatch.diamond { fill: #e15759; stroke: #fff; stroke-width: 1; }
        table.links { border-collapse: collapse; margin: 4px 0 0 9%; font-size: 12px; }
        table.links th, table.links td { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
        table.links th:first-child, table.links td:first-child { text-align: left; }
        """
}
