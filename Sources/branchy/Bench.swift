import ArgumentParser
import BranchyData
import BranchyModel
import BranchyTraining
import BranchyTensor
import CAllocationCounter
import Foundation

/// `branchy bench`: kernel and model throughput on this machine, optionally as JSON.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure GEMM and model speed on this machine (release builds only give meaningful figures).",
        discussion: """
            With no --gemm, --models or --cluster flag, measures GEMM and models (a --model alone \
            selects models only). Each kernel figure is the best of three timed rounds of \
            --seconds / 3 each, after a warm-up. --cluster starts the edge and cloud of --topology \
            as separate processes (the branchy-edge, branchy-cloud and branchy-device executables \
            next to this one), runs the device at concurrency 1 and at its default window, and \
            reports latency per exit and throughput.
            
            """)

    /// The models measured when no --model is given: the default first.
    static let defaultModels = [ModelOptions.defaultModel, "models/b-lenet3", "models/b-lenet"]

    @Flag(help: "Print one JSON object instead of tables.") var json = false
    @Flag(help: "Measure the matrix product.") var gemm = false
    @Flag(help: "Measure the models.") var models = false
    @Flag(help: "Measure a cluster on loopback with TLS (see below).") var cluster = false
    @Option(help: "Topology of the cluster to measure.") var topology = "topology/local.yaml"
    @Option(help: "Samples per cluster run.") var clusterSamples = 10_000
    @Option(help: "Model directory; repeat for several (default: \(Self.defaultModels.joined(separator: ", "))).") var model: [String] = []
    @Option(help: "What to run: 'full' (every stage with its exit) or a stage name; repeat for several (default: full and every stage).")
    var path: [String] = []
    @Option(help: "Batch sizes, comma-separated.") var batch = "1,256"
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Seconds of timed work per figure.") var seconds = 0.6
    @Option(help: "GEMM rows.") var m = 1024
    @Option(help: "GEMM columns.") var n = 1024
    @Option(help: "GEMM inner dimension.") var k = 1024
    @Option(help: "Kernel path: baseline, avx2 or avx512 (default: the widest this CPU supports).") var isa: String?
    @Option(help: "Data set (IDX or CIFAR-10 binary) whose first images feed the models.") var dataset = "data/fashion-mnist"
    @Option(help: "Arithmetic of the models' convolutions, comma-separated: float32, int8 (int8 reads the model's int8.json, made by `branchy quantize`).")
    var precision = "float32"

    /// The precisions asked for.
    func precisions() throws -> [String] {
        let list = precision.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for p in list where p != "float32" && p != "int8" { throw ValidationError("--precision: unknown '\(p)' (expected float32 or int8)") }
        return list
    }

    func validate() throws {
        if let isa {
            guard let chosen = KernelISA(name: isa) else { throw ValidationError("--isa: unknown path '\(isa)' (expected baseline, avx2 or avx512)") }
            guard chosen.isSupported else { throw ValidationError("--isa: this CPU cannot run the \(isa) path") }
        }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be positive") }
        guard m > 0, n > 0, k > 0 else { throw ValidationError("--m, --n and --k must be positive") }
        _ = try parseInts(batch, "--batch")
        _ = try parseInts(threads, "--threads")
        _ = try precisions()
    }

    func run() async throws {
        if let isa, let chosen = KernelISA(name: isa) { KernelISA.active = chosen }
        let batches = try parseInts(batch, "--batch"), threadCounts = try parseInts(threads, "--threads")
        let onlyModels = !gemm && !models && !model.isEmpty
        let onlyCluster = cluster && !gemm && !models && model.isEmpty
        let doGemm = gemm || (!models && !onlyModels && !onlyCluster)
        let doModels = models || onlyModels || (!gemm && !onlyCluster)
        var result = BenchResult(machine: .current)
        if doGemm {
            for t in threadCounts { result.gemm.append(benchGemm(threads: t)) }
            if !json { printGemm(result.gemm) }
        }
        if doModels {
            let dirs = model.isEmpty ? Self.defaultModels : model
            for dir in dirs {
                let loaded = try Model.load(directory: URL(fileURLWithPath: dir))
                let data = try ImageDataset.load(path: dataset, for: loaded.spec.input, preprocessing: loaded.spec.preprocessing)
                for p in try precisions() {
                    let int8 = p == "int8" ? try Int8Calibration.load(for: loaded) : nil
                    let compiled = CompiledNetwork(loaded.network, int8: int8)
                    let names = path.isEmpty ? ["full"] + compiled.stages.map(\.name) : path
                    for name in names {
                        guard name == "full" || compiled.stages.contains(where: { $0.name == name }) else {
                            throw ValidationError("--path: \(dir) has no stage '\(name)' (stages: \(compiled.stages.map(\.name).joined(separator: ", ")))")
                        }
                        for b in batches { for t in threadCounts {
                            var figure = benchModel(compiled, name: loaded.spec.name, path: name, data: data, batch: b, threads: t)
                            figure.precision = p
                            if int8 != nil { figure.isa += "+" + compiled.qisa.description }
                            result.models.append(figure)
                        } }
                    }
                }
            }
            if !json { printModels(result.models) }
        }
        if cluster {
            let figures = try await ClusterBench.run(binDirectory: Self.executableDirectory, topology: topology, samples: clusterSamples)
            result.cluster = figures
            if !json { printCluster(figures) }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(result), as: UTF8.self))
        }
    }

    /// Best seconds per call of `body` over three rounds, and the calls made in the last round.
    private func time(_ body: () -> Void) -> (seconds: Double, calls: Int, allocations: UInt64) {
        body()
        var best = Double.infinity, lastCalls = 0
        var allocations: UInt64 = 0
        for _ in 0..<3 {
            let before = branchy_allocation_count()
            let start = DispatchTime.now().uptimeNanoseconds
            var calls = 0, elapsed = 0.0
            repeat {
                body()
                calls += 1
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            } while elapsed < seconds / 3
            allocations = branchy_allocation_count() - before
            best = min(best, elapsed / Double(calls))
            lastCalls = calls
        }
        return (best, lastCalls, allocations)
    }

    private func benchGemm(threads t: Int) -> BenchResult.Gemm {
        Parallel.threads = t
        var rng = SeededRandom(seed: 7)
        let a = (0..<(m * k)).map { _ in rng.uniform(-1, 1) }, b = (0..<(k * n)).map { _ in rng.uniform(-1, 1) }
        var c = [Float](repeating: 0, count: m * n)
        let (s, _, _) = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    time { Gemm.parallelNN(m, n, k, ap.baseAddress!, bp.baseAddress!, cp.baseAddress!) }
                }
            }
        }
        return .init(m: m, n: n, k: k, threads: t, isa: KernelISA.active.description, gflops: 2 * Double(m) * Double(n) * Double(k) / s / 1e9)
    }

    private func benchModel(_ net: CompiledNetwork, name: String, path: String, data: ImageDataset, batch b: Int, threads t: Int) -> BenchResult.ModelFigure {
        Parallel.threads = t
        let run = path == "full" ? Array(net.stages.indices) : [net.stages.firstIndex { $0.name == path }!]
        let per = data.pixelsPerImage
        var input = [Float](repeating: 0, count: b * per)
        for s in 0..<b {
            let i = s % data.count
            input.replaceSubrange((s * per)..<((s + 1) * per), with: data.images[(i * per)..<((i + 1) * per)])
        }
        let workspaces = (0..<t).map { _ in net.makeWorkspace() }
        let buffers = net.stages.map { stage in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, b * stage.featureCount))
            p.initialize(repeating: 0, count: max(1, b * stage.featureCount))
            return p
        }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: b * net.classes)
        defer { buffers.forEach { $0.deallocate() }; logits.deallocate() }
        let measured = input.withUnsafeBufferPointer { x in
            // Stages `range` from the images: stage i writes its features to buffers[i].
            func stages(_ range: some Sequence<Int>) {
                var src = x.baseAddress!
                for i in range {
                    if i > 0 { src = UnsafePointer(buffers[i - 1]) }
                    net.runParallel(stage: i, count: b, input: src, features: buffers[i], logits: logits, workspaces: workspaces)
                }
            }
            // Real inputs for a later stage: the features the earlier stages give on the same images.
            stages(0..<run[0])
            return time { stages(run) }
        }
        let us = measured.seconds / Double(b) * 1e6
        let allocs = branchy_allocation_counting_available() != 0
            ? Double(measured.allocations) / Double(measured.calls * b) : nil
        return .init(model: name, path: path, batch: b, threads: t, isa: net.isa.description, usPerSample: us,
                     samplesPerSecond: 1e6 / us, allocationsPerSample: allocs)
    }

    /// The folder of this executable, where the node executables are built too.
    static var executableDirectory: URL {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent()
    }

    private func printCluster(_ c: ClusterBenchResult) {
        print("cluster \(c.topology), \(c.samples) samples per run: \(String(format: "%.0f", c.samplesPerSecond)) samples/s at the default window, "
              + "\(String(format: "%.0f", c.samplesPerSecondConcurrency1)) at concurrency 1")
        print("exit          c=1 p50 ms  c=1 p99 ms  default p50 ms  default p99 ms")
        for (name, e) in c.exits.sorted(by: { $0.key < $1.key }) {
            print(name.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + String(format: " %11.3f %11.3f %15.3f %15.3f", e.concurrency1.p50Ms, e.concurrency1.p99Ms,
                           e.defaultConcurrency.p50Ms, e.defaultConcurrency.p99Ms))
        }
        for (node, line) in c.batches.sorted(by: { $0.key < $1.key }) { print("\(node): \(line)") }
        guard !c.hopsConcurrency1.isEmpty else { return }
        print(String(format: "concurrency 1, with timings (device compute p50 %.3f ms):", c.deviceComputeMsConcurrency1))
        print("link            requests  round trip p50  held upstream p50  link itself p50  link itself p99")
        for h in c.hopsConcurrency1 {
            print(h.link.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(format: " %9d %15.3f %18.3f %16.3f %16.3f", h.requests, h.roundTripMs.p50, h.heldMs.p50, h.linkMs.p50, h.linkMs.p99))
        }
    }

    private func printGemm(_ rows: [BenchResult.Gemm]) {
        print("gemm (\(KernelISA.active))   m      n      k  threads   GFLOP/s")
        for r in rows { print(String(format: "%@ %6d %6d %6d %8d %9.1f", "            ".padding(toLength: 12, withPad: " ", startingAt: 0), r.m, r.n, r.k, r.threads, r.gflops)) }
    }

    private func printModels(_ rows: [BenchResult.ModelFigure]) {
        print("model        path       precision batch  threads   µs/sample   samples/s   allocations/sample")
        for r in rows {
            let allocs = r.allocationsPerSample.map { String(format: "%.3f", $0) } ?? "-"
            print(r.model.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + r.path.padding(toLength: 10, withPad: " ", startingAt: 0)
                  + " " + r.precision.padding(toLength: 9, withPad: " ", startingAt: 0)
                  + String(format: " %5d %8d %11.2f %11.0f   ", r.batch, r.threads, r.usPerSample, r.samplesPerSecond) + allocs)
        }
    }
}

/// What `branchy bench --json` prints.
struct BenchResult: Codable {
    struct Machine: Codable {
        var cpus: Int
        var cpu: String
        var isa: String
        var supportedISAs: [String]

        static var current: Machine {
            let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let name = info.split(separator: "\n").first { $0.hasPrefix("model name") }
                .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
            return Machine(cpus: ProcessInfo.processInfo.activeProcessorCount, cpu: name, isa: KernelISA.active.description,
                           supportedISAs: KernelISA.supported.map(\.description))
        }
    }
    struct Gemm: Codable {
        var m: Int, n: Int, k: Int, threads: Int
        var isa: String
        var gflops: Double
    }
    struct ModelFigure: Codable {
        var model: String, path: String
        var batch: Int, threads: Int
        var isa: String
        /// float32, or int8 (the convolutions; see `branchy quantize`).
        var precision = "float32"
        var usPerSample: Double, samplesPerSecond: Double
        /// Heap allocations per sample in the timed rounds (nil where they cannot be counted).
        var allocationsPerSample: Double?
    }

    var machine: Machine
    var gemm: [Gemm] = []
    var models: [ModelFigure] = []
    var cluster: ClusterBenchResult?
}
