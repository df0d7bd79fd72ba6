extension HTMLReport {
    /// Chart 2: mean TLS bytes per sample, one stacked bar per exit and one for all samples,
    /// each stack split by link.
    static func bytesChart(_ input: Input) -> String {
        var f = ChartFrame()
        let linkNames = input.linkNames
        var bars: [(label: String, sub: String?, shares: [Input.LinkShare])] = input.exits.map {
            ($0.name, "\(HTMLText.grouped($0.samples)) samples", $0.links)
        }
        let overall = input.links.map { l in
            Input.LinkShare(link: l.name,
                            bytesPerSample: input.samples == 0 ? 0 : Double(l.requests) * (l.meanUpBytes + l.meanDownBytes) / Double(input.samples))
        }
        bars.append(("all samples", "\(HTMLText.grouped(input.samples)) samples", overall))
        let totals = bars.map { $0.shares.reduce(0) { $0 + $1.bytesPerSample } }
        let y = ChartScale.linear(covering: totals, from: f.bottom, to: f.top)
        f.legend(linkNames.enumerated().map { i, name in (name, ChartPalette.color(i + 4), .square) })
        f.yAxis(y, title: "TLS bytes per sample")
        f.categoryAxis(bars.map { ($0.label, $0.sub) }, title: "samples that left at each exit, and all samples")
        if linkNames.isEmpty { f.emptyNote("no sample crossed a link: every answer came from the device") }
        for (i, bar) in bars.enumerated() {
            let band = f.band(i, of: bars.count)
            let w = min(90, band.width * 0.55)
            var base = 0.0
            for share in bar.shares where share.bytesPerSample > 0 {
                let k = linkNames.firstIndex(of: share.link) ?? 0
                let y0 = y(base), y1 = y(base + share.bytesPerSample)
                f.canvas.rect(x: band.center - w / 2, y: y1, width: w, height: y0 - y1, class: "mark bar-bytes",
                              fill: ChartPalette.color(k + 4), data: [("bar", bar.label), ("link", share.link)],
                              tooltip: "\(bar.label), \(share.link): \(HTMLText.fixed(share.bytesPerSample, 1)) bytes per sample")
                base += share.bytesPerSample
            }
            f.canvas.text(HTMLText.compact(totals[i]) + " B", x: band.center, y: y(totals[i]) - 6, anchor: .middle, class: "value")
        }
        return f.svg(chart: "bytes", title: "Bytes per sample per exit and link")
    }
}
