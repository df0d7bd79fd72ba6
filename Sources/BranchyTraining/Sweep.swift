import BranchyModel
import Foundation

/// Threshold screening as in BranchyNet: try every combination from a list and report the
/// accuracy / early-exit trade-off of each.
public enum Sweep {
    /// The paper's screening list.
    public static let paperGrid: [Float] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2, 3, 5, 10]
    /// A finer list for choosing shipped defaults.
    public static let fineGrid: [Float] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.075] + stride(from: 0.1, through: 1.5, by: 0.05).map { Float($0) } + [2, 3, 10]

    /// One combination's outcome.
    public struct Point: Sendable {
        public var thresholds: [Float]
        public var accuracy: Double
        public var fractions: [Double]
    }

    /// Evaluates every combination of `grid` for the exits before the last.
    public static func run(trace: ExitTrace, grid: [Float]) -> [Point] {
        let k = trace.exitNames.count - 1
        var combos: [[Float]] = [[]]
        for _ in 0..<k { combos = combos.flatMap { c in grid.map { c + [$0] } } }
        return combos.map { t in
            let r = EvalReport(trace: trace, policy: ExitPolicy(thresholds: t), codec: "")
            return Point(thresholds: t, accuracy: r.accuracy, fractions: r.exits.map(\.fraction))
        }
    }

    /// Points not beaten on both accuracy and first-exit fraction (then earlier exits weighted more).
    public static func frontier(_ points: [Point]) -> [Point] {
        func earliness(_ p: Point) -> Double { p.fractions.enumerated().reduce(0) { $0 + $1.element * Double(p.fractions.count - 1 - $1.offset) } }
        let sorted = points.sorted { earliness($0) > earliness($1) || (earliness($0) == earliness($1) && $0.accuracy > $1.accuracy) }
        var best = -1.0
        var out: [Point] = []
        for p in sorted where p.accuracy > best { out.append(p); best = p.accuracy }
        return out
    }

    /// The combination that sends most samples out early while losing at most `tolerance` accuracy
    /// against the last exit alone.
    public static func choose(_ points: [Point], finalOnly: Double, tolerance: Double) -> Point? {
        func earliness(_ p: Point) -> Double { p.fractions.enumerated().reduce(0) { $0 + $1.element * Double(p.fractions.count - 1 - $1.offset) } }
        return points.filter { $0.accuracy >= finalOnly - tolerance }.max { earliness($0) < earliness($1) }
    }
}
