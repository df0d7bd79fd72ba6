import Foundation

/// Maps data values onto pixel positions along one axis of a chart, linearly or on a log10
/// scale, and picks round tick values. A degenerate domain (empty, one value, not finite) is
/// widened so that a position is always finite.
struct ChartScale {
    enum Kind { case linear, log }

    let kind: Kind
    let lower: Double
    let upper: Double
    /// Pixel positions of `lower` and `upper` (`from` > `to` for a y axis).
    let from: Double
    let to: Double

    /// A linear scale over round bounds that contain `values` (and zero when `includeZero`).
    static func linear(covering values: [Double], includeZero: Bool = true, from: Double, to: Double) -> ChartScale {
        var v = values.filter(\.isFinite)
        if includeZero { v.append(0) }
        var lo = v.min() ?? 0, hi = v.max() ?? 1
        if hi - lo <= 0 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = (includeZero && lo >= 0 ? lo : lo - pad, hi + pad)
        }
        let step = niceStep((hi - lo) / 5)
        return ChartScale(kind: .linear, lower: (lo / step).rounded(.down) * step, upper: (hi / step).rounded(.up) * step, from: from, to: to)
    }

    /// A linear scale over exactly `lower...upper`.
    static func fixed(_ lower: Double, _ upper: Double, from: Double, to: Double) -> ChartScale {
        ChartScale(kind: .linear, lower: lower, upper: upper > lower ? upper : lower + 1, from: from, to: to)
    }

    /// A log10 scale over whole decades that contain the positive `values`.
    static func log(covering values: [Double], from: Double, to: Double) -> ChartScale {
        let v = values.filter { $0.isFinite && $0 > 0 }
        var lo = Foundation.log10(v.min() ?? 0.1).rounded(.down), hi = Foundation.log10(v.max() ?? 10).rounded(.up)
        if hi <= lo { hi = lo + 1 }
        lo = max(lo, -9)
        hi = min(max(hi, lo + 1), 12)
        return ChartScale(kind: .log, lower: Foundation.pow(10, lo), upper: Foundation.pow(10, hi), from: from, to: to)
    }

    /// The pixel position of `value`, clamped to the axis; the axis start for a value that is
    /// not finite (or not positive on a log scale).
    func callAsFunction(_ value: Double) -> Double {
        let t: Double
        switch kind {
        case .linear:
            guard value.isFinite else { return from }
            t = (value - lower) / (upper - lower)
        case .log:
            guard value.isFinite, value > 0 else { return from }
            t = (Foundation.log10(value) - Foundation.log10(lower)) / (Foundation.log10(upper) - Foundation.log10(lower))
        }
        let c = min(1, max(0, t.isFinite ? t : 0))
        return from + c * (to - from)
    }

    /// Round values along the axis: about five steps of 1, 2 or 5 × 10ⁿ on a linear scale;
    /// 1, 2 and 5 in each decade on a log scale (only the powers of ten when there are many decades).
    var ticks: [Double] {
        switch kind {
        case .linear:
            let step = Self.niceStep((upper - lower) / 5)
            var out: [Double] = []
            var v = (lower / step).rounded(.up) * step
            while v <= upper + step * 1e-9, out.count < 50 {
                out.append(abs(v) < step * 1e-9 ? 0 : v)
                v += step
            }
            return out
        case .log:
            let lo = Int(Foundation.log10(lower).rounded()), hi = Int(Foundation.log10(upper).rounded())
            let multiples: [Double] = hi - lo > 3 ? [1] : [1, 2, 5]
            var out: [Double] = []
            for d in lo...hi {
                for m in multiples {
                    let v = m * Foundation.pow(10, Double(d))
                    if v <= upper * (1 + 1e-9) { out.append(v) }
                }
            }
            return out
        }
    }

    /// 1, 2 or 5 × 10ⁿ, the smallest at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return 1 }
        let magnitude = Foundation.pow(10, Foundation.log10(raw).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * magnitude >= raw * (1 - 1e-9) { return m * magnitude }
        return 10 * magnitude
    }
}
