extension HTMLReport {
    /// Chart 3: the calibration's points as accuracy against bytes per sample, the frontier
    /// (no other point both cheaper and more accurate) as a line, the chosen point ringed, and
    /// this run's measured figures as a diamond. Nil without calibration data.
    static func frontierChart(_ input: Input) -> String? {
        guard let cal = input.calibration else { return nil }
        var f = ChartFrame()
        let xs = cal.points.map(\.bytesPerSample) + [input.bytesPerSample]
        let ys = cal.points.map(\.accuracy) + [input.accuracy]
        let x = ChartScale.linear(covering: xs, from: f.left, to: f.right)
        let y = ChartScale.linear(covering: ys.map { 100 * $0 }, includeZero: false, from: f.bottom, to: f.top)
        f.legend([("screened thresholds", ChartPalette.color(0), .dot), ("frontier", ChartPalette.color(0), .line)]
                 + (cal.chosenPoint == nil ? [] : [("chosen", ChartPalette.accuracy, .ring)]) + [("this run", ChartPalette.color(3), .diamond)])
        f.xAxis(x, title: "TLS bytes per sample")
        f.yAxis(y, title: "accuracy (%)")
        if cal.points.isEmpty { f.emptyNote("the calibration file has no points") }
        func pos(_ p: Calibration.Point) -> (x: Double, y: Double) { (x(p.bytesPerSample), y(100 * p.accuracy)) }
        func describe(_ p: Calibration.Point) -> String {
            "thresholds [\(p.thresholds.map(HTMLText.compact).joined(separator: ", "))]: accuracy \(HTMLText.percent(p.accuracy, 2)), "
                + "\(HTMLText.fixed(p.bytesPerSample, 1)) B/sample" + (p.deviceFraction.map { ", \(HTMLText.percent($0)) on the device" } ?? "")
        }
        let frontier = Self.frontier(cal.points)
        if frontier.count > 1 {
            f.canvas.polyline(frontier.map { pos(cal.points[$0]) }, class: "frontier-line", stroke: ChartPalette.color(0))
        }
        for (i, p) in cal.points.enumerated() {
            let c = pos(p)
            f.canvas.circle(cx: c.x, cy: c.y, r: 4, class: frontier.contains(i) ? "mark point on-frontier" : "mark point",
                            fill: ChartPalette.color(0), data: [("index", String(i))], tooltip: describe(p))
        }
        if let chosen = cal.chosen, let p = cal.chosenPoint {
            let c = pos(p)
            f.canvas.circle(cx: c.x, cy: c.y, r: 9, class: "mark chosen", data: [("index", String(chosen))], tooltip: "chosen: " + describe(p))
            let label = "chosen [\(p.thresholds.map(HTMLText.compact).joined(separator: ", "))]"
            let rightHalf = c.x > (f.left + f.right) / 2
            f.canvas.text(label, x: rightHalf ? c.x - 14 : c.x + 14, y: c.y - 12, anchor: rightHalf ? .end : .start, class: "value")
        }
        let run = (x: x(input.bytesPerSample), y: y(100 * input.accuracy))
        f.canvas.polygon([(run.x, run.y - 7), (run.x + 7, run.y), (run.x, run.y + 7), (run.x - 7, run.y)], class: "mark run",
                         tooltip: "this run: accuracy \(HTMLText.percent(input.accuracy, 2)), \(HTMLText.fixed(input.bytesPerSample, 1)) B/sample")
        return f.svg(chart: "frontier", title: "Calibration frontier: accuracy against bytes per sample")
    }

    /// Indices of the points no other point beats on both counts (fewer or equal bytes and
    /// higher accuracy, or fewer bytes and equal accuracy), by ascending bytes.
    static func frontier(_ points: [Calibration.Point]) -> [Int] {
        let order = points.indices.sorted {
            (points[$0].bytesPerSample, -points[$0].accuracy, $0) < (points[$1].bytesPerSample, -points[$1].accuracy, $1)
        }
        var out: [Int] = []
        var best = -Double.infinity
        for i in order where points[i].accuracy > best {
            out.append(i)
            best = points[i].accuracy
        }
        return out
    }
}
