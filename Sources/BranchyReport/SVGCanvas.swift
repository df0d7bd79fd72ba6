/// A small writer of inline SVG: each call appends one element with escaped attributes, in
/// call order, so the same calls give the same text. Numbers go through
/// `HTMLText.coordinate`, which never writes `nan` or `inf`.
struct SVGCanvas {
    let width: Double
    let height: Double
    private(set) var body = ""

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// The complete `<svg>` element. `chart` names the chart (`data-chart`), `title` is its
    /// accessible name.
    func svg(chart: String, title: String) -> String {
        let w = HTMLText.coordinate(width), h = HTMLText.coordinate(height)
        return "<svg class=\"chart\" data-chart=\"\(HTMLText.escape(chart))\" xmlns=\"http://www.w3.org/2000/svg\" "
            + "width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" role=\"img\" aria-label=\"\(HTMLText.escape(title))\">\n"
            + "<title>\(HTMLText.escape(title))</title>\n" + body + "</svg>"
    }

    /// An attribute value: a number (written as a coordinate) or a string (escaped).
    enum Value {
        case number(Double)
        case text(String)

        static func textIfAny(_ s: String?) -> Value? { s.map { Value.text($0) } }
    }

    /// Attributes in order; nil values are left out.
    typealias Attributes = [(String, Value?)]

    private static func render(_ attributes: Attributes) -> String {
        attributes.map { k, v in
            switch v {
            case .number(let x)?: " \(k)=\"\(HTMLText.coordinate(x))\""
            case .text(let s)?: " \(k)=\"\(HTMLText.escape(s))\""
            case nil: ""
            }
        }.joined()
    }

    private static func data(_ pairs: [(String, String)]) -> Attributes { pairs.map { ("data-\($0.0)", .text($0.1)) } }

    /// An element; `tooltip` becomes a `<title>` child (shown on hover), `text` its content.
    mutating func element(_ name: String, _ attributes: Attributes, text: String? = nil, tooltip: String? = nil) {
        body += "<\(name)\(Self.render(attributes))"
        if text == nil, tooltip == nil {
            body += "/>\n"
            return
        }
        body += ">"
        if let tooltip { body += "<title>\(HTMLText.escape(tooltip))</title>" }
        if let text { body += HTMLText.escape(text) }
        body += "</\(name)>\n"
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, class cls: String, fill: String? = nil,
                       data: [(String, String)] = [], tooltip: String? = nil) {
        element("rect", [("class", .text(cls)), ("x", .number(x)), ("y", .number(y)), ("width", .number(max(0, width))),
                         ("height", .number(max(0, height))), ("fill", .textIfAny(fill))] + Self.data(data), tooltip: tooltip)
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, class cls: String) {
        element("line", [("class", .text(cls)), ("x1", .number(x1)), ("y1", .number(y1)), ("x2", .number(x2)), ("y2", .number(y2))])
    }

    mutating func circle(cx: Double, cy: Double, r: Double, class cls: String, fill: String? = nil,
                         data: [(String, String)] = [], tooltip: String? = nil) {
        element("circle", [("class", .text(cls)), ("cx", .number(cx)), ("cy", .number(cy)), ("r", .number(r)), ("fill", .textIfAny(fill))]
                    + Self.data(data), tooltip: tooltip)
    }

    mutating func polyline(_ points: [(x: Double, y: Double)], class cls: String, stroke: String? = nil,
                           data: [(String, String)] = [], tooltip: String? = nil) {
        let p = points.map { HTMLText.coordinate($0.x) + "," + HTMLText.coordinate($0.y) }.joined(separator: " ")
        element("polyline", [("class", .text(cls)), ("points", .text(p)), ("stroke", .textIfAny(stroke))] + Self.data(data), tooltip: tooltip)
    }

    mutating func polygon(_ points: [(x: Double, y: Double)], class cls: String, tooltip: String? = nil) {
        let p = points.map { HTMLText.coordinate($0.x) + "," + HTMLText.coordinate($0.y) }.joined(separator: " ")
        element("polygon", [("class", .text(cls)), ("points", .text(p))], tooltip: tooltip)
    }

    enum Anchor: String { case start, middle, end }

    mutating func text(_ s: String, x: Double, y: Double, anchor: Anchor = .start, class cls: String = "label",
                       rotate: Bool = false) {
        let transform = rotate ? "rotate(-90 \(HTMLText.coordinate(x)) \(HTMLText.coordinate(y)))" : nil
        element("text", [("class", .text(cls)), ("x", .number(x)), ("y", .number(y)), ("text-anchor", .text(anchor.rawValue)),
                         ("transform", .textIfAny(transform))], text: s)
    }
}
