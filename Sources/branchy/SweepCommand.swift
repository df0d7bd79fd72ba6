import ArgumentParser
import BranchyModel
import BranchyTraining
import Foundation

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Screen entropy-threshold combinations and print the accuracy / exit-rate trade-off.")

    @OptionGroup var options: ModelOptions

    @Option(help: "Threshold list: paper (BranchyNet's screening list) or fine.")
    var grid: String = "paper"

    @Flag(help: "Print every combination, not just the frontier.")
    var all = false

    @Option(help: "Accuracy loss allowed against the final exit alone when recommending, in points.")
    var tolerance: Double = 0.5

    func validate() throws {
        guard ["paper", "fine"].contains(grid) else { throw ValidationError("--grid: expected paper or fine, got '\(grid)'") }
    }

    func run() throws {
        let (model, data, codec) = try options.load()
        let trace = try Evaluator.trace(network: model.network, data: data, limit: options.limit, links: codec, progress: true,
                                        int8: try options.int8Calibration(model: model))
        let points = BranchyTraining.Sweep.run(trace: trace, grid: grid == "paper" ? BranchyTraining.Sweep.paperGrid : BranchyTraining.Sweep.fineGrid)
        let finalOnly = EvalReport(trace: trace, policy: ExitPolicy(thresholds: [Float](repeating: 0, count: trace.exitNames.count - 1)), codec: "").finalOnlyAccuracy
        let shown = all ? points : BranchyTraining.Sweep.frontier(points)
        print("thresholds".padding(toLength: 20, withPad: " ", startingAt: 0) + "accuracy  " + trace.exitNames.map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
        for p in shown {
            let t = p.thresholds.map { String(format: "%g", $0) }.joined(separator: ",")
            print(t.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%6.2f%%   ", 100 * p.accuracy)
                + p.fractions.map { String(format: "%6.2f%%     ", 100 * $0) }.joined())
        }
        print(String(format: "final exit alone: %.2f%% (%d combinations screened", 100 * finalOnly, points.count) + ", codec \(codec))")
        if let pick = BranchyTraining.Sweep.choose(points, finalOnly: finalOnly, tolerance: tolerance / 100) {
            print("recommended (within \(tolerance) points): " + pick.thresholds.map { String(format: "%g", $0) }.joined(separator: ",")
                  + String(format: " -> %.2f%%, first exit takes %.2f%%", 100 * pick.accuracy, 100 * pick.fractions[0]))
        }
    }
}
