import ArgumentParser
import BranchyImport
import BranchyModel
import BranchyTensor
import Foundation

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import an early-exit network from ONNX as a model directory.",
        discussion: """
        The graph's outputs are the exits' logits, ordered by depth (or by --exits). Stage k ends at \
        exit k's branch point, the last tensor its head shares with the deeper exits, which is what \
        the stage forwards upward (--split names other tensors). Batch norms are folded into the \
        convolutions before them. Prints the plan: per stage its ONNX nodes, multiply-adds, \
        parameters and the forwarded tensor with its bytes per sample under each codec.
        """)

    @Argument(help: "The ONNX file (its external data files next to it).")
    var onnx: String

    @Option(help: "The model directory to write (must not exist).")
    var output: String

    @Option(help: "The exits: graph output names, comma-separated, from the device's to the last (default: every output, by depth).")
    var exits: String?

    @Option(help: "The tensors stages forward, comma-separated, one per exit but the last (default: the exits' branch points).")
    var split: String?

    @Option(help: "The model's name (default: the output directory's name).")
    var name: String?

    func run() throws {
        let url = URL(fileURLWithPath: onnx)
        let out = URL(fileURLWithPath: output)
        guard !FileManager.default.fileExists(atPath: out.path) else {
            throw ValidationError("--output \(output) already exists; give a new directory")
        }
        let list = { (s: String?) in s.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } }
        let result: ONNXImporter.Result
        do {
            result = try ONNXImporter.importModel(url, exits: list(exits), split: list(split), name: name ?? out.lastPathComponent)
        } catch let e as ImportError {
            throw CommandError(e.description)
        }
        let table = ImportPlanTable(result: result)
        print(table.text)
        let model = try ONNXImporter.write(result, to: out, source: url.lastPathComponent)
        let card = table.card(model: model, source: url.lastPathComponent, sha256: try fileDigest(url))
        try card.write(to: out.appendingPathComponent("MODEL_CARD.md"), atomically: true, encoding: .utf8)
        print("wrote \(output): model \(model.spec.name), \(model.spec.stages.count) stages, fingerprint \(model.fingerprintHex)")
    }

    private func fileDigest(_ url: URL) throws -> String {
        var hasher = SHA256()
        hasher.update(try Data(contentsOf: url))
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// A failure to report as is (no usage text).
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
