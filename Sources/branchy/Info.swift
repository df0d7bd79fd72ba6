import ArgumentParser
import BranchyModel
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a model directory: stages, shapes, parameters, fingerprint.")

    @Option(help: "Model directory.")
    var model: String = ModelOptions.defaultModel

    func run() throws {
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        print("model \(m.spec.name), input \(m.spec.input), \(m.spec.classes) classes")
        print("fingerprint \(m.fingerprintHex)")
        for s in m.network.stages {
            let params = (s.trunk + s.exit).flatMap(\.parameters).reduce(0) { $0 + $1.value.count }
            let out = s.outputShape.reduce(1, *)
            print("stage \(s.name): input \(s.inputShape) -> features \(s.outputShape) (\(out) values), exit '\(s.exitName)', \(params) parameters")
        }
        if let d = m.spec.defaults {
            print("default thresholds \(d.thresholds), codec \(d.codec ?? "float32")")
        }
    }
}
