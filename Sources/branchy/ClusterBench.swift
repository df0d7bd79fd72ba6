import BranchyReport
import BranchyTopology
import Foundation

/// What `ClusterBench.run` measured: per-exit latency with one request in flight and with the
/// device's default window, and the throughput with the default window.
struct ClusterBenchResult: Codable, Sendable {
    struct Latency: Codable, Sendable {
        /// Samples that left at this exit in that run.
        var samples: Int
        var p50Ms: Double
        var p99Ms: Double
    }

    struct Exit: Codable, Sendable {
        /// One request in flight (`--concurrency 1`).
        var concurrency1: Latency
        /// The device's default window.
        var defaultConcurrency: Latency
    }

    var topology: String
    /// Samples classified in each of the two runs.
    var samples: Int
    /// Throughput of the run with the default window.
    var samplesPerSecond: Double
    /// Throughput of the run with one request in flight.
    var samplesPerSecondConcurrency1: Double
    /// Per exit name.
    var exits: [String: Exit]
    /// Per server node: the batch-size line it logged at shutdown (both runs together).
    var batches: [String: String]
    /// The run with one request in flight asks for timings: each link's round trip, the far node's
    /// hold and the link's own cost.
    var hopsConcurrency1: [HopTiming] = []
    /// The device's compute per sample in that run, p50 in milliseconds.
    var deviceComputeMsConcurrency1: Double = 0
}

/// Starts the server nodes of a topology as separate processes (the `branchy-edge` and
/// `branchy-cloud` executables in `binDirectory`, mutual TLS on loopback with the certificates of
/// `scripts/gen-certs.sh`), runs its first device over `samples` samples twice, with one request
/// in flight (asking for timings) and with its default window, stops the servers, and reads the
/// device's reports.
struct ClusterBench {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func run(binDirectory: URL, topology: String, samples: Int) async throws -> ClusterBenchResult {
        guard samples > 0 else { throw Failure("samples must be at least 1") }
        let topologyURL = URL(fileURLWithPath: topology).standardizedFileURL
        try ensureCertificates(topology: topologyURL)
        let topo = try Topology.load(contentsOf: topologyURL, stageOrder: nil, checkFiles: true)
        guard let device = topo.nodes.first(where: { $0.role == .device }) else {
            throw Failure("\(topology): no device node")
        }
        // Upstream first, so that every edge finds its cloud listening.
        let servers = topo.nodes.filter { $0.role == .cloud } + topo.nodes.filter { $0.role == .edge }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-cluster-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        var started: [(node: NodeConfig, process: Process, log: URL)] = []
        do {
            for node in servers {
                let log = work.appendingPathComponent("\(node.name).log")
                let process = try launch(binDirectory.appendingPathComponent("branchy-\(node.role.rawValue)"),
                                         ["--topology", topologyURL.path, "--node", node.name], stderr: log)
                started.append((node, process, log))
                try await waitUntilListening(node: node.name, process: process, log: log, seconds: 30)
            }
            let c1 = try await runDevice(binDirectory, topologyURL, device.name, samples: samples, concurrency: 1, timings: true,
                                         report: work.appendingPathComponent("c1.json"))
            let dflt = try await runDevice(binDirectory, topologyURL, device.name, samples: samples, concurrency: nil,
                                           report: work.appendingPathComponent("default.json"))
            await stop(started.reversed().map(\.process))
            var batches: [String: String] = [:]
            for s in started {
                let text = (try? String(contentsOf: s.log, encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").last(where: { $0.contains("batches by size") }),
                   let range = line.range(of: "batches by size") {
                    batches[s.node.name] = String(line[range.lowerBound...])
                }
            }
            var exits: [String: ClusterBenchResult.Exit] = [:]
            for e in c1.exits {
                let d = dflt.exits.first { $0.name == e.name }
                exits[e.name] = .init(
                    concurrency1: .init(samples: e.count, p50Ms: e.latencyMs.p50, p99Ms: e.latencyMs.p99),
                    defaultConcurrency: .init(samples: d?.count ?? 0, p50Ms: d?.latencyMs.p50 ?? .nan, p99Ms: d?.latencyMs.p99 ?? .nan))
            }
            return ClusterBenchResult(topology: topology, samples: samples, samplesPerSecond: dflt.samplesPerSecond,
                                      samplesPerSecondConcurrency1: c1.samplesPerSecond, exits: exits, batches: batches,
                                      hopsConcurrency1: c1.hopTimings ?? [], deviceComputeMsConcurrency1: c1.deviceComputeMs?.p50 ?? 0)
        } catch {
            await stop(started.reversed().map(\.process))
            throw error
        }
    }

    // MARK: - Reports

    private static func runDevice(_ bin: URL, _ topology: URL, _ node: String, samples: Int, concurrency: Int?, timings: Bool = false,
                                  report: URL) async throws -> RunReport {
        var args = ["--topology", topology.path, "--node", node, "--limit", "\(samples)", "--report", report.path]
        if let concurrency { args += ["--concurrency", "\(concurrency)"] }
        if timings { args.append("--timings") }
        let log = report.deletingPathExtension().appendingPathExtension("log")
        let process = try launch(bin.appendingPathComponent("branchy-device"), args, stderr: log, stdout: true)
        let status = await wait(process)
        guard status == 0 else {
            throw Failure("branchy-device \(args.joined(separator: " ")) exited \(status): \(lastLine(of: log))")
        }
        let r = try RunReport.load(report)
        guard r.failed == 0 else { throw Failure("\(r.failed) of \(r.samples) samples failed") }
        return r
    }

    // MARK: - Processes

    private static func launch(_ executable: URL, _ arguments: [String], stderr: URL, stdout: Bool = false) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw Failure("no executable \(executable.path); build the node executables first (swift build -c release)")
        }
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        let handle = try FileHandle(forWritingTo: stderr)
        p.standardError = handle
        p.standardOutput = stdout ? handle : FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    private static func wait(_ process: Process) async -> Int32 {
        while process.isRunning { try? await Task.sleep(nanoseconds: 20_000_000) }
        return process.terminationStatus
    }

    private static func waitUntilListening(node: String, process: Process, log: URL, seconds: Double) async throws {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            if let text = try? String(contentsOf: log, encoding: .utf8), text.contains("listening on") { return }
            guard process.isRunning else { throw Failure("\(node) exited before listening: \(lastLine(of: log))") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw Failure("\(node) did not listen within \(Int(seconds)) s")
    }

    /// SIGTERM (the nodes drain and log their batch sizes), SIGKILL after 15 s.
    private static func stop(_ processes: [Process]) async {
        for p in processes where p.isRunning { p.terminate() }
        let until = Date().addingTimeInterval(15)
        for p in processes {
            while p.isRunning && Date() < until { try? await Task.sleep(nanoseconds: 20_000_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
    }

    private static func lastLine(of file: URL) -> String {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last.map(String.init) ?? "(no output)"
    }

    // MARK: - Certificates

    /// Makes the topology's certificates with `scripts/gen-certs.sh` (found in a folder above the
    /// topology file) when any node's files are missing.
    private static func ensureCertificates(topology: URL) throws {
        let topo = try Topology.load(contentsOf: topology, stageOrder: nil, checkFiles: false)
        let fm = FileManager.default
        let missing = topo.nodes.contains { n in [n.tls.ca, n.tls.cert, n.tls.key].contains { !fm.fileExists(atPath: $0.path) } }
        guard missing else { return }
        var dir = topology.deletingLastPathComponent()
        while dir.path != "/" {
            let script = dir.appendingPathComponent("scripts/gen-certs.sh")
            if fm.fileExists(atPath: script.path) {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                // The names from the loader's reading, so the script needs no executable to read the file.
                let folder = topo.certsDirectory ?? topology.deletingLastPathComponent()
                p.arguments = ["bash", script.path, "--nodes", topo.nodes.map(\.name).joined(separator: ","), folder.path]
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw Failure("\(script.path) \(topology.path) exited \(p.terminationStatus)") }
                return
            }
            dir = dir.deletingLastPathComponent()
        }
        throw Failure("the TLS files of \(topology.path) are missing; make them with scripts/gen-certs.sh \(topology.path)")
    }
}
