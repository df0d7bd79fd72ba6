import ArgumentParser
import BranchyData
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

    @Option(help: "Add exits to a classifier (a graph with one output) at these tensors, comma-separated, from the device's on; their heads are trained on --train with the imported network frozen.")
    var addExit: String?

    @Option(help: "With --add-exit: the training samples (a directory's training split, an IDX images file or a CIFAR-10 .bin batch).")
    var train: String?

    @Option(help: "With --add-exit: train on the first N samples of --train only (keep the rest held out).")
    var trainLimit: Int?

    @Option(help: "With --add-exit: epochs of head training.")
    var headEpochs: Int = 8

    @Option(help: "With --add-exit: samples to report each head's accuracy on (a directory's test split or a file; default: --train's directory's test split, when it has one).")
    var check: String?

    @Option(help: ArgumentHelp("Preprocessing: resize images before cropping, the shorter side to S or to exactly HxW (bilinear).", valueName: "S|HxW"))
    var resize: String?

    @Option(help: ArgumentHelp("Preprocessing: cut the centre HxW (or SxS) after resizing.", valueName: "HxW"))
    var crop: String?

    @Option(help: "Preprocessing: what a byte is multiplied by (1/255 maps bytes to [0, 1]; 1 keeps 0 to 255).")
    var scale: Float = 1 / 255

    @Option(help: "Preprocessing: per-channel mean subtracted after scaling, comma-separated (one value or one per channel).")
    var mean: String?

    @Option(help: "Preprocessing: per-channel standard deviation divided by after the mean (one value or one per channel).")
    var std: String?

    @Option(help: "Preprocessing: the colour channels' order the network was trained on (rgb or bgr).")
    var channelOrder: Preprocessing.ChannelOrder = .rgb

    func validate() throws {
        if addExit != nil && train == nil { throw ValidationError("--add-exit needs --train (the samples its heads learn from)") }
        if addExit == nil && (train != nil || trainLimit != nil || check != nil) { throw ValidationError("--train, --train-limit and --check go with --add-exit") }
        if headEpochs < 1 { throw ValidationError("--head-epochs must be at least 1") }
        if let l = trainLimit, l < 1 { throw ValidationError("--train-limit must be at least 1") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: onnx)
        let out = URL(fileURLWithPath: output)
        guard !FileManager.default.fileExists(atPath: out.path) else {
            throw ValidationError("--output \(output) already exists; give a new directory")
        }
        var result: ONNXImporter.Result
        do {
            result = try ONNXImporter.importModel(url, exits: list(exits), split: list(split), name: name ?? out.lastPathComponent,
                                                  addExits: list(addExit))
        } catch let e as ImportError {
            throw CommandError(e.description)
        }
        let preprocessing = try self.preprocessing(channels: result.spec.input.first ?? 0)
        result.spec.preprocessing = preprocessing
        var notes: [String] = []
        if let train { notes = try trainHeads(&result, train: train, preprocessing: preprocessing) }
        let table = ImportPlanTable(result: result)
        print(table.text)
        let model = try ONNXImporter.write(result, to: out, source: url.lastPathComponent)
        let card = table.card(model: model, source: url.lastPathComponent, sha256: try fileDigest(url), notes: notes)
        try card.write(to: out.appendingPathComponent("MODEL_CARD.md"), atomically: true, encoding: .utf8)
        print("wrote \(output): model \(model.spec.name), \(model.spec.stages.count) stages, fingerprint \(model.fingerprintHex)")
    }

    /// Trains the added exits' heads and prints their accuracy; returns the card's lines about them.
    private func trainHeads(_ result: inout ONNXImporter.Result, train: String, preprocessing p: Preprocessing) throws -> [String] {
        let trainURL = URL(fileURLWithPath: train)
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: train, isDirectory: &isDirectory)
        let input = result.spec.input
        var data = isDirectory.boolValue ? try ImageDataset.load(directory: trainURL, split: .train, for: input, preprocessing: p)
            : try ImageDataset.load(path: train, for: input, preprocessing: p)
        if let trainLimit, trainLimit < data.count { data = data.subset(Array(0..<trainLimit)) }
        var checkData: ImageDataset? = nil
        if let check { checkData = try ImageDataset.load(path: check, for: input, preprocessing: p) } else if isDirectory.boolValue {
            checkData = try? ImageDataset.load(directory: trainURL, split: .test, for: input, preprocessing: p)
        }
        let figures = try AddedExitTraining(epochs: headEpochs, seed: 1).train(&result, on: data, check: checkData)
        var notes = ["exits added at " + zip(result.addedExits, list(addExit) ?? []).map { "`\($1)` (\(result.spec.stages[$0.stage].exit.name))" }
            .joined(separator: ", ") + ", each head (`ExitHead`: 3×3 convolution to \(ExitHead.channels) channels, ReLU, 2×2 max pooling, linear) "
            + "trained alone on the frozen network for \(headEpochs) epochs on \(data.count) samples of `\(train)` (seed 1)"]
        for f in figures {
            let check = f.checkAccuracy.map { String(format: ", %.2f%% on %d check samples", 100 * $0, checkData?.count ?? 0) } ?? ""
            let line = String(format: "exit %@: %.2f%% on the training samples (last epoch)%@, trained in %.0f s", f.exit, 100 * f.trainAccuracy, check, f.seconds)
            print(line)
            notes.append(line)
        }
        return notes
    }

    /// The preprocessing the options describe, checked against a model taking `channels` channels.
    private func preprocessing(channels: Int) throws -> Preprocessing {
        func size(_ s: String, _ option: String, single: Bool) throws -> [Int] {
            let parts = s.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (parts.count == 1 || parts.count == 2), parts.allSatisfy({ $0 != nil }) else {
                throw ValidationError("\(option): '\(s)' is not S or HxW")
            }
            let v = parts.map { $0! }
            return v.count == 1 && !single ? [v[0], v[0]] : v
        }
        let p = Preprocessing(resize: try resize.map { try size($0, "--resize", single: true) },
                              centerCrop: try crop.map { try size($0, "--crop", single: false) },
                              scale: scale, mean: try mean.map { try parseFloats($0, "--mean") } ?? [],
                              std: try std.map { try parseFloats($0, "--std") } ?? [], channelOrder: channelOrder, layout: .nchw)
        if let problem = p.problem(channels: channels) { throw ValidationError("preprocessing: \(problem)") }
        return p
    }

    /// A comma-separated option as its items.
    private func list(_ s: String?) -> [String]? { s.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } }

    private func fileDigest(_ url: URL) throws -> String {
        var hasher = SHA256()
        hasher.update(try Data(contentsOf: url))
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

extension Preprocessing.ChannelOrder: ExpressibleByArgument {}

/// A failure to report as is (no usage text).
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
