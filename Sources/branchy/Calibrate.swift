import ArgumentParser
import BranchyData
import BranchyModel
import BranchyReport
import BranchyTensor
import BranchyTopology
import BranchyTraining
import Foundation

/// `branchy calibrate`: per-exit thresholds chosen on held-out training samples for a goal, with
/// the accuracy / bytes-per-sample frontier.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose per-exit thresholds on held-out training samples for an accuracy floor or a byte budget, minimising bytes on the wire.",
        discussion: """
        The accuracy floor is relative to the float model's final exit alone (every link float32). Runs the model over the training samples held out at training time (never the test set) with each link's codec, \
        counts what every sample would put on the wire (protocol version 2 frames, one TLS record each, both directions, \
        all links, handshakes not included), screens threshold combinations and prints the accuracy / bytes frontier. \
        The goal is an accuracy floor relative to the final exit alone (--max-accuracy-drop, points) or a byte budget \
        per sample (--byte-budget); among the combinations that meet it, the one with the fewest bytes (or, with a \
        budget, the highest accuracy) is chosen. --write stores the thresholds (and the link codecs) as the model's \
        defaults and writes the frontier to calibration.json in the model directory.
        """)

    @Option(help: "Model directory.") var model: String = ModelOptions.defaultModel
    @Option(help: "Directory holding the training set (IDX or CIFAR-10 binary).") var data: String = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Held-out samples (as given to train).") var validation: Int = 5000
    @Option(help: "Seed given to train (it fixes which samples were held out).") var seed: UInt64 = 1
    @Option(help: "Held-out samples of a model trained elsewhere (an imported one): a data set every sample of which is held out (a directory's test split, an IDX images file or a CIFAR-10 .bin batch), instead of --data, --validation and --seed.")
    var heldOut: String?
    @Option(help: "Topology whose device path gives each link's codec (default: device, edge and cloud with --codec).") var topology: String?
    @Option(help: "With --topology: the device whose path is calibrated (default: the first).") var device: String?
    @Option(help: "Without --topology: the codec of each link, e.g. sign,int4+zstd (default: the model's).") var codec: String?
    @Option(help: "Without --topology: the arithmetic of the convolutions, float32 or int8 (the model's int8.json); with --topology, each node's `precision:`.")
    var precision: String?
    @Option(help: "Accuracy floor: at most this many points below the final exit alone.") var maxAccuracyDrop: Double?
    @Option(help: "Byte budget: at most this many bytes per sample on the wire, all links.") var byteBudget: Double?
    @Option(help: "Minimise bytes (default), or mean-latency or p99-latency under --link-model.") var minimise: Objective = .bytes
    @Option(help: "Each link's one-way delay and rate, in path order, for the latency objectives, e.g. 5ms:1mbit,40ms:10mbit.") var linkModel: String?
    @Option(help: "Write the frontier here as JSON (with --write: <model>/calibration.json).") var frontierOut: String?
    @Flag(help: "Store the chosen thresholds and codecs as the model's defaults, and the frontier next to it.") var write = false

    func validate() throws {
        if maxAccuracyDrop != nil && byteBudget != nil { throw ValidationError("give --max-accuracy-drop or --byte-budget, not both") }
        if let d = maxAccuracyDrop, !(d >= 0) { throw ValidationError("--max-accuracy-drop must be 0 or more points") }
        if let b = byteBudget, !(b > 0) { throw ValidationError("--byte-budget must be a positive number of bytes") }
        if codec != nil && topology != nil { throw ValidationError("give --codec or --topology, not both") }
        if precision != nil && topology != nil { throw ValidationError("give --precision or --topology (whose nodes set `precision:`), not both") }
        if let precision, precision != "float32" && precision != "int8" { throw ValidationError("--precision: unknown '\(precision)' (expected float32 or int8)") }
        if minimise != .bytes && linkModel == nil { throw ValidationError("--minimise \(minimise.rawValue) needs --link-model (e.g. 5ms:1mbit,40ms:10mbit)") }
        if let linkModel { _ = try LinkModel.parse(linkModel) }
    }

    enum Objective: String, ExpressibleByArgument, CaseIterable {
        case bytes
        case meanLatency = "mean-latency"
        case p99Latency = "p99-latency"
    }

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let m = try Model.load(directory: dir)
        let network = m.network
        let stages = network.stages.count
        guard stages >= 2 else { throw ValidationError("\(model) has one exit: nothing to calibrate") }
        let cost: WireCost
        if let topology {
            cost = try WireCost.from(topology: topology, device: device, network: network)
        } else {
            let text = codec ?? m.spec.defaults?.codec ?? "int8"
            let codecs = try text.split(separator: ",").map { name -> FeatureCodec in
                guard let c = FeatureCodec(String(name)) else { throw ValidationError("--codec: unknown codec '\(name)' (expected \(FeatureCodec.namesHelp))") }
                return c
            }
            guard codecs.count == 1 || codecs.count == stages - 1 else {
                throw ValidationError("--codec: give one codec or one per link (\(stages - 1))")
            }
            cost = WireCost.threeNodes(network: network, codecs: codecs)
        }
        let held: ImageDataset
        if let heldOut {
            held = try ImageDataset.load(path: heldOut, for: m.spec.input, preprocessing: m.spec.preprocessing)
        } else {
            let all = try ImageDataset.load(directory: URL(fileURLWithPath: data), split: .train, for: m.spec.input, preprocessing: m.spec.preprocessing)
            held = split(all, holdOut: validation, seed: seed).1
        }
        guard held.shape == m.spec.input else {
            throw ValidationError("\(heldOut ?? data): images are \(held.shapeDescription) but the model expects \(m.spec.input)")
        }
        printError("calibrating on \(held.count) held-out \(heldOut == nil ? "training " : "")samples, links \(cost.codecs.map { $0?.name ?? "-" }.joined(separator: ","))")
        // The exits as the nodes compute them: in int8 where they run int8.
        let int8 = try int8Calibration(model: m, precision: precision,
                                       topology: try topology.map { try Topology.load(contentsOf: URL(fileURLWithPath: $0), checkFiles: false) },
                                       topologyPath: topology, device: device)
        let trace = try Evaluator.trace(network: network, data: held, links: cost.linkCodecs, progress: true,
                                        measure: { cost.requestBytes(stage: $0, item: $1) }, int8: int8)
        let links = try linkModel.map { try LinkModel.parse($0) }
        let frontier = Frontier(trace: trace, cost: cost, grid: Calibrate.grid, links: links)
        // The floor is relative to the float model: every link float32, the final exit alone.
        let floatTrace = try Evaluator.trace(network: network, data: held, links: LinkCodecs(between: .float32, stages: stages))
        let final = Frontier.finalOnly(floatTrace)
        var goal: String
        let chosen: Frontier.Point?
        if let budget = byteBudget {
            goal = "byte budget \(budget) bytes per sample"
            chosen = frontier.all.filter { $0.bytesPerSample <= budget }.max { ($0.accuracy, -$0.bytesPerSample) < ($1.accuracy, -$1.bytesPerSample) }
        } else {
            let drop = maxAccuracyDrop ?? 0.5
            goal = "max accuracy drop \(drop) points below the final exit alone"
            let eligible = frontier.all.filter { $0.accuracy >= final - drop / 100 - 1e-12 }
            switch minimise {
            case .bytes: chosen = eligible.min { ($0.bytesPerSample, -$0.accuracy) < ($1.bytesPerSample, -$1.accuracy) }
            case .meanLatency: chosen = eligible.min { ($0.meanLatencyMs, $0.bytesPerSample) < ($1.meanLatencyMs, $1.bytesPerSample) }
            case .p99Latency: chosen = eligible.min { ($0.p99LatencyMs, $0.meanLatencyMs, $0.bytesPerSample) < ($1.p99LatencyMs, $1.meanLatencyMs, $1.bytesPerSample) }
            }
            if minimise != .bytes { goal += ", minimising \(minimise.rawValue) on links \(linkModel ?? "")" }
        }
        print(String(format: "final exit alone: %.2f%% with float32 links, %.2f%% with these codecs, on %d held-out samples; "
                     + "every sample to the last exit costs %.1f bytes", 100 * final, 100 * frontier.finalOnlyAccuracy, held.count, frontier.allToLastBytes))
        print(frontier.table(marking: chosen))
        guard let chosen else { throw ValidationError("no threshold combination meets the goal (\(goal))") }
        print("chosen for \(goal): thresholds " + chosen.thresholds.map { String(format: "%g", $0) }.joined(separator: ",")
              + String(format: " -> accuracy %.2f%%, %.1f bytes per sample, %.1f%% at the first exit", 100 * chosen.accuracy, chosen.bytesPerSample,
                       100 * chosen.fractions[0])
              + (links == nil ? "" : String(format: ", latency mean %.2f ms, p99 %.2f ms (link model)", chosen.meanLatencyMs, chosen.p99LatencyMs)))
        let file = Calibration(goal: goal, points: frontier.points.map(Calibration.Point.init),
                               chosen: frontier.points.firstIndex { $0.thresholds == chosen.thresholds } ?? -1,
                               samples: held.count, finalOnlyAccuracy: final, links: cost.codecs.map { $0?.name },
                               chosenThresholds: chosen.thresholds.map(Double.init(shortest:)))
        let out = frontierOut ?? (write ? dir.appendingPathComponent("calibration.json").path : nil)
        if let out {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(file).write(to: URL(fileURLWithPath: out))
            print("frontier written to \(out)")
        }
        if write {
            var spec = m.spec
            let codecs = cost.codecs.dropFirst().compactMap { $0?.kind.name }
            spec.defaults = .init(thresholds: chosen.thresholds,
                                  codec: codecs.count == stages - 1 ? codecs.joined(separator: ",") : spec.defaults?.codec)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(spec).write(to: dir.appendingPathComponent(Model.specFileName))
            print("thresholds written to \(dir.appendingPathComponent(Model.specFileName).path)")
        }
    }

    /// Thresholds screened for every exit but the last.
    static let grid: [Float] = [0, 0.01, 0.025, 0.05, 0.075] + stride(from: 0.1, through: 1.6, by: 0.025).map { Float($0) } + [1.75, 2, 2.5, 10]
}

/// Every threshold combination's accuracy and bytes per sample, and the combinations no other
/// beats on both.
struct Frontier {
    struct Point {
        var thresholds: [Float]
        var accuracy: Double
        var bytesPerSample: Double
        var fractions: [Double]
        /// Under the link model, when one was given (else 0).
        var meanLatencyMs: Double = 0
        var p99LatencyMs: Double = 0
    }

    let all: [Point]
    /// Points not beaten on both accuracy and bytes, fewest bytes first.
    let points: [Point]
    let finalOnlyAccuracy: Double
    let allToLastBytes: Double

    init(trace: ExitTrace, cost: WireCost, grid: [Float], links: [LinkModel]? = nil) {
        let n = trace.samples
        let exits = trace.exitNames.count
        // bytes[exit][sample]: what the sample costs when it leaves at that exit.
        var bytes = [[Int]](repeating: [Int](repeating: 0, count: n), count: exits)
        for e in 0..<exits {
            for s in 0..<n {
                bytes[e][s] = cost.sampleBytes(exit: e, request: { trace.inputBytes[$0][s] }, predicted: trace.outputs[e][s].predicted)
            }
        }
        // latency[exit][sample] under the link model: each link crossed costs a round trip and the
        // time its request and answer take at its rate (compute time is left out).
        var latency = [[Double]]()
        if let links {
            latency = (0..<exits).map { e in (0..<n).map { s in
                var ms = 0.0
                let crossed = cost.links(upTo: e)
                for (k, stage) in crossed.enumerated() where k < links.count {
                    let answer = 40 + 8 * (crossed.count - 1 - k)  // a result with the later hops
                    ms += 2 * links[k].delayMs + Double(trace.inputBytes[stage][s] + answer) * 8 / links[k].bitsPerMs
                }
                return ms
            } }
        }
        var combos: [[Float]] = [[]]
        for _ in 0..<(exits - 1) { combos = combos.flatMap { c in grid.map { c + [$0] } } }
        var all: [Point] = []
        var taken = [Double](repeating: 0, count: n)
        for t in combos {
            let policy = ExitPolicy(thresholds: t)
            var correct = 0, total = 0
            var counts = [Int](repeating: 0, count: exits)
            for s in 0..<n {
                var e = exits - 1
                for i in 0..<(exits - 1) where policy.exits(at: i, of: exits, entropy: trace.outputs[i][s].entropy) { e = i; break }
                counts[e] += 1
                total += bytes[e][s]
                if !latency.isEmpty { taken[s] = latency[e][s] }
                if trace.outputs[e][s].predicted == trace.labels[s] { correct += 1 }
            }
            var point = Point(thresholds: t, accuracy: Double(correct) / Double(max(1, n)), bytesPerSample: Double(total) / Double(max(1, n)),
                              fractions: counts.map { Double($0) / Double(max(1, n)) })
            if !latency.isEmpty && n > 0 {
                point.meanLatencyMs = taken.reduce(0, +) / Double(n)
                let sorted = taken.sorted()
                point.p99LatencyMs = sorted[min(n - 1, Int((0.99 * Double(n)).rounded(.up)) - 1)]
            }
            all.append(point)
        }
        self.all = all
        var best = -1.0
        var front: [Point] = []
        for p in all.sorted(by: { ($0.bytesPerSample, -$0.accuracy) < ($1.bytesPerSample, -$1.accuracy) }) where p.accuracy > best {
            front.append(p)
            best = p.accuracy
        }
        points = front
        finalOnlyAccuracy = Frontier.finalOnly(trace)
        allToLastBytes = Double(bytes[exits - 1].reduce(0, +)) / Double(max(1, n))
    }

    /// Accuracy of the last exit alone over the trace's samples.
    static func finalOnly(_ trace: ExitTrace) -> Double {
        let last = trace.outputs[trace.exitNames.count - 1]
        return Double((0..<trace.samples).filter { last[$0].predicted == trace.labels[$0] }.count) / Double(max(1, trace.samples))
    }

    func table(marking chosen: Point?) -> String {
        var out = "  thresholds          accuracy   bytes/sample  " + (0..<(points.first?.fractions.count ?? 0)).map { "exit\($0 + 1)" .padding(toLength: 8, withPad: " ", startingAt: 0) }.joined() + "\n"
        for p in points {
            let mark = p.thresholds == chosen?.thresholds ? "*" : " "
            let t = p.thresholds.map { String(format: "%g", $0) }.joined(separator: ",").padding(toLength: 18, withPad: " ", startingAt: 0)
            out += "\(mark) \(t)  " + String(format: "%6.2f%%   %10.1f    ", 100 * p.accuracy, p.bytesPerSample)
                + p.fractions.map { String(format: "%5.1f%%  ", 100 * $0) }.joined() + "\n"
        }
        return out
    }
}

extension Calibration.Point {
    /// A frontier point as `calibration.json` holds it; thresholds print as the `Float`s they are (0.6, not 0.6000000238).
    init(_ p: Frontier.Point) {
        self.init(thresholds: p.thresholds.map(Double.init(shortest:)), accuracy: p.accuracy, bytesPerSample: p.bytesPerSample,
                  deviceFraction: p.fractions.first ?? 0, fractions: p.fractions, meanLatencyMs: p.meanLatencyMs, p99LatencyMs: p.p99LatencyMs)
    }
}

extension Double {
    /// The `Double` written with the fewest digits that read back as `f`.
    init(shortest f: Float) { self = Double("\(f)") ?? Double(f) }
}

/// One link of a latency model: one-way delay and rate (`5ms:1mbit`).
struct LinkModel {
    var delayMs: Double
    /// Rate in bits per millisecond.
    var bitsPerMs: Double

    /// Parses `DELAY:RATE,...`: delays in ms or s (`5ms`, `0.04s`), rates in bit, kbit, mbit or gbit (per second).
    static func parse(_ text: String) throws -> [LinkModel] {
        try text.split(separator: ",").map { part in
            let pieces = part.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard pieces.count == 2, let delay = number(pieces[0], units: ["ms": 1, "s": 1000]),
                  let rate = number(pieces[1], units: ["gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1]), rate > 0, delay >= 0 else {
                throw ValidationError("--link-model: '\(part)' is not DELAY:RATE such as 5ms:1mbit")
            }
            return LinkModel(delayMs: delay, bitsPerMs: rate / 1000)
        }
    }

    private static func number(_ s: String, units: [String: Double]) -> Double? {
        for (unit, scale) in units.sorted(by: { $0.key.count > $1.key.count }) where s.hasSuffix(unit) {
            return Double(s.dropLast(unit.count)).map { $0 * scale }
        }
        return nil
    }
}
