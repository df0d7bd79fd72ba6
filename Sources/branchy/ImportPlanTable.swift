import BranchyData
import BranchyImport
import BranchyModel
import BranchyTensor
import Foundation

/// The plan of an import as a table (per stage: ONNX nodes, multiply-adds, parameters, the
/// forwarded tensor and its bytes per sample under each codec) and the model card.
struct ImportPlanTable {
    var result: ONNXImporter.Result

    /// Codecs the table prices the forwarded tensor in.
    static let codecs: [FeatureCodecKind] = [.float32, .float16, .int8, .int4, .sign]

    var text: String {
        var lines = [["stage".padding(toLength: 7, withPad: " ", startingAt: 0), "exit".padding(toLength: 21, withPad: " ", startingAt: 0),
                      "nodes".leftPadded(6), "multiply-adds".leftPadded(14), "parameters".leftPadded(11),
                      "forwards (per sample)".padding(toLength: 26, withPad: " ", startingAt: 0),
                      Self.codecs.map { ($0.name + " B").padding(toLength: 9, withPad: " ", startingAt: 0) }.joined(separator: " ")]
            .joined(separator: " ")]
        for (k, s) in result.stages.enumerated() {
            let last = k == result.stages.count - 1
            let shape = "(" + s.forwardedShape.map(String.init).joined(separator: ", ") + ")"
            let bytes = last ? Self.codecs.map { _ in "-        " }.joined(separator: " ")
                : Self.codecs.map { String(Self.bytes($0, s.forwardedShape)).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined(separator: " ")
            lines.append([s.name.padding(toLength: 7, withPad: " ", startingAt: 0),
                          String(s.exit.prefix(21)).padding(toLength: 21, withPad: " ", startingAt: 0),
                          String(s.nodes).leftPadded(6), String(s.multiplyAdds).leftPadded(14), String(s.parameters).leftPadded(11),
                          (last ? "-" : "\(s.forwarded.suffix(12)) \(shape)").padding(toLength: 26, withPad: " ", startingAt: 0), bytes]
                .joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    /// Bytes of one sample's forwarded tensor under `codec` (data and codec parameters, no frame header).
    static func bytes(_ codec: FeatureCodecKind, _ shape: [Int]) -> Int {
        codec.dataByteCount(elements: shape.reduce(1, *)) + codec.parameterByteCount(shape: [1] + shape)
    }

    func card(model: Model, source: String, sha256: String, notes: [String] = []) -> String {
        let spec = model.spec
        var s = "# Model card: \(spec.name)\n\n"
        s += "Imported by `branchy import` from `\(source)` (SHA-256 `\(sha256)`, opset \(result.opset)"
        s += result.producer.isEmpty ? ").\n\n" : ", written by \(result.producer)).\n\n"
        s += "- input (N, \(spec.input.map(String.init).joined(separator: ", "))), \(spec.classes) classes, \(spec.stages.count) stages\n"
        s += "- preprocessing (`model.json`'s `preprocessing`, applied to every data set given to the model): "
            + (spec.preprocessing ?? .standard).summary + "\n"
        s += "- fingerprint `\(model.fingerprintHex)`\n"
        if let d = spec.defaults {
            s += "- thresholds \(d.thresholds.map { String(format: "%g", $0) }.joined(separator: ", ")) are placeholders: "
            s += "choose them with `branchy calibrate`; default codec \(d.codec ?? "float32")\n"
        }
        for n in notes { s += "- \(n)\n" }
        s += "\n## Plan\n\n| stage | exit | ONNX nodes | multiply-adds | parameters | forwards | "
        s += Self.codecs.map { "\($0.name) B" }.joined(separator: " | ") + " |\n"
        s += "|---|---|---|---|---|---|" + Self.codecs.map { _ in "---|" }.joined() + "\n"
        for (k, st) in result.stages.enumerated() {
            let last = k == result.stages.count - 1
            s += "| \(st.name) | \(st.exit) | \(st.nodes) | \(st.multiplyAdds) | \(st.parameters) | "
            s += last ? "— | " + Self.codecs.map { _ in "—" }.joined(separator: " | ") + " |\n"
                : "`\(st.forwarded)` (\(st.forwardedShape.map(String.init).joined(separator: ", "))) | "
                    + Self.codecs.map { String(Self.bytes($0, st.forwardedShape)) }.joined(separator: " | ") + " |\n"
        }
        return s
    }
}

extension String {
    /// The string right-aligned in `width` columns.
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
