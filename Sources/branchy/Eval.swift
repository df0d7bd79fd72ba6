import ArgumentParser
import BranchyModel
import BranchyTraining
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a data set with early exits and print the per-exit table.")

    @OptionGroup var options: ModelOptions

    @Option(help: "Entropy thresholds, one per exit but the last, e.g. 0.3,0.5 (default: the topology's with --topology, else the model's).")
    var thresholds: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Write each sample's exit (from 0), predicted class and the entropy at each exit it reached (natural log) as JSON lines to this file.")
    var predictions: String?

    func run() throws {
        if thresholds != nil, let topology = options.topology {
            throw ValidationError("--thresholds and --topology: the topology \(topology) sets the thresholds; give one or the other")
        }
        let (model, data, codec) = try options.load()
        let exits = model.network.stages.count
        let t = try thresholds.map { try parseFloats($0, "--thresholds") } ?? options.topologyThresholds(model: model) ?? model.spec.defaults?.thresholds
            ?? [Float](repeating: 0.5, count: exits - 1)
        guard t.count == exits - 1 else {
            throw ValidationError("--thresholds: the model has \(exits) exits, so give \(exits - 1) thresholds, got \(t.count)")
        }
        let int8 = try options.int8Calibration(model: model)
        let trace = try Evaluator.trace(network: model.network, data: data, limit: options.limit, links: codec, progress: !json, int8: int8)
        let report = EvalReport(trace: trace, policy: ExitPolicy(thresholds: t), codec: codec.description)
        if let predictions {
            var lines = ""
            for s in 0..<report.samples {
                let reached = (0...report.takenExit[s]).map { e -> String in
                    let h = trace.outputs[e][s].entropy
                    return h.isFinite ? "\(h)" : "null"
                }
                lines += "{\"sample\":\(s),\"exit\":\(report.takenExit[s]),\"class\":\(report.predictions[s]),\"entropies\":[\(reached.joined(separator: ","))]}\n"
            }
            try lines.write(toFile: predictions, atomically: true, encoding: .utf8)
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print("model \(model.spec.name) (\(model.fingerprintHex.prefix(16))) on \(try options.datasetPath())\(options.topology.map { ", as topology \($0) runs it" } ?? "")"
                  + (int8.map { ", convolutions in int8 (\($0.activations.count) calibrated; those with fewer than 4 input channels stay float32)" } ?? ""))
            print(report.table, terminator: "")
        }
    }
}
