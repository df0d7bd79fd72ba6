/// The layout every chart of the HTML report shares: a canvas, a plot area inside margins,
/// axes with ticks, grid lines and titles, and a legend row above the plot.
struct ChartFrame {
    static let width = 720.0
    static let height = 330.0

    var canvas = SVGCanvas(width: ChartFrame.width, height: ChartFrame.height)
    let left = 70.0
    let right = ChartFrame.width - 70
    let top = 50.0
    let bottom = ChartFrame.height - 56

    var plotWidth: Double { right - left }
    var plotHeight: Double { bottom - top }

    /// A category axis: the centre and width of band `i` of `count`.
    func band(_ i: Int, of count: Int) -> (center: Double, width: Double) {
        let step = plotWidth / Double(max(1, count))
        return (left + step * (Double(i) + 0.5), step)
    }

    /// Left (or, with `onRight`, right) y axis: ticks, labels and, on the left, grid lines.
    mutating func yAxis(_ scale: ChartScale, title: String, onRight: Bool = false, format: (Double) -> String = HTMLText.compact) {
        let x = onRight ? right : left
        canvas.line(x1: x, y1: top, x2: x, y2: bottom, class: "axis")
        for t in scale.ticks {
            let y = scale(t)
            if !onRight { canvas.line(x1: left, y1: y, x2: right, y2: y, class: "grid") }
            canvas.line(x1: x, y1: y, x2: onRight ? x + 5 : x - 5, y2: y, class: "axis")
            canvas.text(format(t), x: onRight ? x + 8 : x - 8, y: y + 4, anchor: onRight ? .start : .end, class: "tick")
        }
        let tx = onRight ? ChartFrame.width - 14 : 18.0
        canvas.text(title, x: tx, y: (top + bottom) / 2, anchor: .middle, class: "axis-title", rotate: true)
    }

    /// Bottom x axis with numeric ticks and vertical grid lines.
    mutating func xAxis(_ scale: ChartScale, title: String, format: (Double) -> String = HTMLText.compact) {
        canvas.line(x1: left, y1: bottom, x2: right, y2: bottom, class: "axis")
        for t in scale.ticks {
            let x = scale(t)
            canvas.line(x1: x, y1: top, x2: x, y2: bottom, class: "grid")
            canvas.line(x1: x, y1: bottom, x2: x, y2: bottom + 5, class: "axis")
            canvas.text(format(t), x: x, y: bottom + 18, anchor: .middle, class: "tick")
        }
        canvas.text(title, x: (left + right) / 2, y: ChartFrame.height - 12, anchor: .middle, class: "axis-title")
    }

    /// Bottom category axis with one label (and an optional second line) per band.
    mutating func categoryAxis(_ labels: [(String, String?)], title: String) {
        canvas.line(x1: left, y1: bottom, x2: right, y2: bottom, class: "axis")
        for (i, l) in labels.enumerated() {
            let x = band(i, of: labels.count).center
            canvas.text(l.0, x: x, y: bottom + 18, anchor: .middle, class: "tick")
            if let sub = l.1 { canvas.text(sub, x: x, y: bottom + 32, anchor: .middle, class: "tick sub") }
        }
        canvas.text(title, x: (left + right) / 2, y: ChartFrame.height - 8, anchor: .middle, class: "axis-title")
    }

    /// One legend entry per item, left to right above the plot, on a second row when the
    /// first is full: a swatch (a square, a dot, a ring, a diamond or a line) and the label.
    enum Swatch { case square, dot, ring, diamond, line }
    mutating func legend(_ items: [(label: String, color: String, swatch: Swatch)]) {
        var x = left
        var y = 18.0
        for item in items {
            // An estimate of the label's width at the legend's 12 px font.
            let width = 30 + Double(item.label.count) * 6.6
            if x > left, x + width > ChartFrame.width - 10 {
                x = left
                y += 17
            }
            switch item.swatch {
            case .square: canvas.rect(x: x, y: y - 9, width: 12, height: 12, class: "legend-swatch", fill: item.color)
            case .dot: canvas.circle(cx: x + 6, cy: y - 3, r: 5, class: "legend-swatch", fill: item.color)
            case .ring: canvas.circle(cx: x + 6, cy: y - 3, r: 6, class: "legend-swatch ring")
            case .diamond: canvas.polygon([(x + 6, y - 10), (x + 13, y - 3), (x + 6, y + 4), (x - 1, y - 3)], class: "legend-swatch diamond")
            case .line: canvas.polyline([(x, y - 3), (x + 14, y - 3)], class: "legend-swatch line", stroke: item.color)
            }
            canvas.text(item.label, x: x + 18, y: y + 1, class: "legend")
            x += width
        }
    }

    /// A note in the middle of the plot, for a chart without data.
    mutating func emptyNote(_ s: String) {
        canvas.text(s, x: (left + right) / 2, y: (top + bottom) / 2, anchor: .middle, class: "empty-note")
    }

    /// The chart as an `<svg>` element.
    func svg(chart: String, title: String) -> String { canvas.svg(chart: chart, title: title) }
}

/// Colours of exits, links and markers, the same on every chart.
enum ChartPalette {
    static let series = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f"]
    static func color(_ i: Int) -> String { series[((i % series.count) + series.count) % series.count] }
    static let accuracy = "#222222"
}
