extension HTMLReport {
    /// Chart 4: the latency distribution of each exit as a cumulative curve (share of the
    /// exit's samples answered within x ms), on a log time axis.
    static func latencyChart(_ input: Input) -> String {
        var f = ChartFrame()
        let all = input.exits.flatMap(\.latenciesMs)
        let x = ChartScale.log(covering: all, from: f.left, to: f.right)
        let y = ChartScale.fixed(0, 1, from: f.bottom, to: f.top)
        f.legend(input.exits.enumerated().map { i, e in
            let label = e.latenciesMs.isEmpty ? "\(e.name) (no samples)"
                : "\(e.name) p50 \(HTMLText.compact(quantile(e.latenciesMs, 0.5))) ms, p99 \(HTMLText.compact(quantile(e.latenciesMs, 0.99))) ms"
            return (label, ChartPalette.color(i), .line)
        })
        f.xAxis(x, title: "latency (ms, log scale)")
        f.yAxis(y, title: "samples answered within") { HTMLText.percent($0, 0) }
        if all.isEmpty { f.emptyNote("no answered samples") }
        for (i, e) in input.exits.enumerated() where !e.latenciesMs.isEmpty {
            let pts = cdf(e.latenciesMs, points: 160).map { (x: x($0.ms), y: y($0.share)) }
            // Start on the axis so that a single sample still draws a step.
            let curve = [(x: pts[0].x, y: f.bottom)] + pts
            f.canvas.polyline(curve, class: "mark cdf", stroke: ChartPalette.color(i), data: [("exit", e.name), ("samples", String(e.samples))],
                              tooltip: "\(e.name): \(HTMLText.grouped(e.latenciesMs.count)) samples")
        }
        return f.svg(chart: "latency", title: "Latency distribution per exit")
    }

    /// The nearest-rank quantile of ascending `sorted` (0 when empty).
    static func quantile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
    }

    /// At most `points` + 1 steps of the empirical distribution of ascending `sorted`:
    /// (latency, share of samples at or below it).
    static func cdf(_ sorted: [Double], points: Int) -> [(ms: Double, share: Double)] {
        let n = sorted.count
        guard n > 0 else { return [] }
        let m = min(n, max(1, points))
        var out: [(ms: Double, share: Double)] = []
        var last = -1
        for k in 0...m {
            let idx = m == 0 ? 0 : Int((Double(k) * Double(n - 1) / Double(m)).rounded())
            guard idx != last else { continue }
            last = idx
            out.append((sorted[idx], Double(idx + 1) / Double(n)))
        }
        return out
    }
}
