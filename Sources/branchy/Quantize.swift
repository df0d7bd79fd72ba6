import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTraining
import Foundation

/// `branchy quantize`: measures every convolution's input range on held-out training samples,
/// writes the int8 calibration and compares each exit's accuracy in int8 and float32 on the test set.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calibrate int8 convolutions on held-out training samples and compare each exit with float32 on the test set.",
        discussion: """
        Runs the float model over the held-out training samples (never the test set) and records the range of every \
        convolution's input; each convolution then runs with its input quantized to unsigned bytes over that range \
        and its weights to signed bytes with one scale per output channel, summed exactly in 32-bit integers \
        (AVX-512 VNNI where the CPU has it, else AVX2, else scalar: the same bits on every path). Prints each exit \
        alone on the test set in float32 and int8, and writes int8.json beside the model (--write) or to --out. \
        A node runs int8 when its topology entry says `precision: int8`.
        """)

    @Option(help: "Model directory.") var model: String = ModelOptions.defaultModel
    @Option(help: "Directory holding the training set (IDX or CIFAR-10 binary).") var data: String = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Held-out samples (as given to train).") var validation: Int = 5000
    @Option(help: "Seed given to train (it fixes which samples were held out).") var seed: UInt64 = 1
    @Option(help: "Held-out samples of a model trained elsewhere: a data set every sample of which is held out, instead of --data, --validation and --seed.")
    var heldOut: String?
    @Option(help: "Test set the exits are compared on (a directory's test split, an IDX images file or a CIFAR-10 .bin batch).")
    var test: String = ModelOptions.defaultDataset
    @Option(help: "Write the calibration here (with --write: <model>/int8.json).") var out: String?
    @Flag(help: "Write the calibration as <model>/int8.json, where nodes with `precision: int8` read it.") var write = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        if write && out != nil { throw ValidationError("give --write or --out, not both") }
        if validation < 1 { throw ValidationError("--validation must be at least 1") }
    }

    /// Each exit alone on the test set, float32 and int8.
    struct ExitComparison: Codable {
        var exit: String
        var float32: Double
        var int8: Double
        var dropPoints: Double
    }

    struct Summary: Codable {
        var model: String
        var heldOutSamples: Int
        var testSamples: Int
        var qisa: String
        /// Convolutions calibrated, and those that run in int8 (fewer than 4 input channels stay float32).
        var convolutions: Int
        var int8Convolutions: Int
        var exits: [ExitComparison]
        var file: String?
    }

    func run() throws {
        let m = try Model.load(directory: URL(fileURLWithPath: model))
        let network = m.network
        let held: ImageDataset
        if let heldOut {
            held = try ImageDataset.load(path: heldOut, for: m.spec.input, preprocessing: m.spec.preprocessing)
        } else {
            let all = try ImageDataset.load(directory: URL(fileURLWithPath: data), split: .train, for: m.spec.input, preprocessing: m.spec.preprocessing)
            held = split(all, holdOut: validation, seed: seed).1
        }
        let observer = ActivationObserver()
        if !json { printError("measuring convolution inputs on \(held.count) held-out samples") }
        _ = try Evaluator.trace(network: network, data: held, observer: observer)
        let calibration = Int8Calibration(model: m.spec.name, fingerprint: m.fingerprintHex, samples: held.count, activations: observer.observed)
        try calibration.check(covers: m, file: "(measured)")

        let testSet = try ImageDataset.load(path: test, for: m.spec.input, preprocessing: m.spec.preprocessing)
        let floatTrace = try Evaluator.trace(network: network, data: testSet)
        let int8Trace = try Evaluator.trace(network: network, data: testSet, int8: calibration)
        func accuracy(_ t: ExitTrace, _ e: Int) -> Double {
            Double(zip(t.outputs[e], t.labels).filter { $0.0.predicted == $0.1 }.count) / Double(max(1, t.samples))
        }
        let exits = network.stages.indices.map { e in
            let f = accuracy(floatTrace, e), q = accuracy(int8Trace, e)
            return ExitComparison(exit: network.stages[e].exitName, float32: 100 * f, int8: 100 * q, dropPoints: 100 * (f - q))
        }
        var file: String?
        if write || out != nil {
            let url = out.map { URL(fileURLWithPath: $0) } ?? m.directory.appendingPathComponent(Int8Calibration.fileName)
            try calibration.write(to: url)
            file = url.path
        }
        let summary = Summary(model: m.spec.name, heldOutSamples: held.count, testSamples: testSet.count, qisa: QuantizedISA.active.description,
                              convolutions: calibration.activations.count,
                              int8Convolutions: CompiledNetwork(network, int8: calibration).quantizedConvolutions, exits: exits, file: file)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(summary), as: UTF8.self))
            return
        }
        print("model \(m.spec.name): \(summary.int8Convolutions) of \(summary.convolutions) convolutions in int8 (\(summary.qisa); those with "
              + "fewer than 4 input channels stay float32), ranges from \(held.count) held-out samples")
        print("exit alone on \(testSet.count) test samples   float32    int8   drop (points)")
        for e in exits {
            print(e.exit.padding(toLength: 36, withPad: " ", startingAt: 0)
                  + String(format: "%7.2f%% %7.2f%% %+7.2f", e.float32, e.int8, e.dropPoints))
        }
        if let file { print("wrote \(file)") }
    }
}
