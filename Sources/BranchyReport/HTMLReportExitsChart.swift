extension HTMLReport {
    /// Chart 1: samples that left at each exit (bars, left axis) and the accuracy of those
    /// samples (dots, right axis).
    static func exitsChart(_ input: Input) -> String {
        var f = ChartFrame()
        let exits = input.exits
        let counts = exits.map { Double($0.samples) }
        let y = ChartScale.linear(covering: counts, from: f.bottom, to: f.top)
        let acc = ChartScale.fixed(0, 1, from: f.bottom, to: f.top)
        f.legend([("samples", ChartPalette.color(0), .square), ("accuracy of those samples", ChartPalette.accuracy, .dot)])
        f.yAxis(y, title: "samples")
        f.yAxis(acc, title: "accuracy", onRight: true) { HTMLText.percent($0, 0) }
        f.categoryAxis(exits.map { ($0.name, $0.node.isEmpty ? nil : $0.node) }, title: "exit (node)")
        if exits.isEmpty { f.emptyNote("no exits") }
        for (i, e) in exits.enumerated() {
            let band = f.band(i, of: exits.count)
            let w = min(90, band.width * 0.5)
            let top = y(Double(e.samples))
            let share = input.samples == 0 ? 0 : Double(e.samples) / Double(input.samples)
            f.canvas.rect(x: band.center - w / 2, y: top, width: w, height: f.bottom - top, class: "mark bar-samples",
                          fill: ChartPalette.color(i), data: [("exit", e.name), ("samples", String(e.samples))],
                          tooltip: "\(e.name): \(HTMLText.grouped(e.samples)) samples (\(HTMLText.percent(share)))")
            f.canvas.text("\(HTMLText.grouped(e.samples)) (\(HTMLText.percent(share)))", x: band.center, y: top - 6,
                          anchor: .middle, class: "value")
            if e.samples > 0 {
                let ay = acc(e.accuracy)
                f.canvas.circle(cx: band.center, cy: ay, r: 5, class: "mark accuracy", fill: ChartPalette.accuracy,
                                data: [("exit", e.name), ("accuracy", HTMLText.fixed(e.accuracy, 4))],
                                tooltip: "\(e.name): accuracy \(HTMLText.percent(e.accuracy, 2))")
                f.canvas.text(HTMLText.percent(e.accuracy), x: band.center + 9, y: ay + 4, class: "value")
            }
        }
        return f.svg(chart: "exits", title: "Samples and accuracy per exit")
    }
}
