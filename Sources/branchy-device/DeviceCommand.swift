import ArgumentParser
import BranchyData
import BranchyNode
import BranchyNodeOptions
import BranchyObservability
import BranchyReport
import BranchyTopology
import BranchyWire
import Foundation
import Logging
import NIOPosix
import Synchronization

/// The device tier: classifies a data set (`run`, the default) or serves applications (`serve`),
/// sending only unsure samples upstream.
@main
struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "branchy-device",
        abstract: "Run a device node of a Branchy cluster: over a data set (run), or serving applications' requests (serve).",
        subcommands: [RunCommand.self, ServeCommand.self], defaultSubcommand: RunCommand.self)
}

/// Classifies a data set and reports what each exit cost.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run",
        abstract: "Classify a data set through the cluster and report what each exit cost (the default).")

    @Option(help: "Topology file.") var topology: String
    @Option(help: "Name of this node in the topology.") var node: String
    @Option(help: "Data set: a directory (its test split; IDX or CIFAR-10 binary), an IDX images file or a CIFAR-10 .bin batch (default: the topology's 'dataset:').") var dataset: String?
    @Option(help: "Classify only the first N samples.") var limit: Int?
    @Option(help: "Samples in flight at once (default: 16, at most the node's maxInFlight).") var concurrency: Int?
    @Option(help: "Samples computed at once, each lane keeping its share of the window in flight (default: 1).") var threads: Int?
    @Option(help: "How many nice steps below the rest of the process the lanes compute, 0 to 19.") var sampleNiceness = DeviceRunner.defaultLaneNiceness
    @Option(help: "Start at most this many samples per second, as a camera's frame rate would (default: as fast as the window allows).") var rate: Double?
    @Flag(help: "Ask every node upward for how long it held each forwarded sample: the report then splits each link's round trip into the far node's hold and the link's own cost.") var timings = false
    @Option(help: "Write the JSON report here.") var report: String?
    @Option(help: "The JSON report of a baseline run of the same samples (e.g. topology/cloud-only.yaml), to compare bytes and latency with.") var baseline: String?
    @Option(help: "Write each sample's exit (from 0), class, status and the entropies it reached (null where this device cannot know them) as JSON lines here.") var predictions: String?
    @Option(help: "Write a self-contained HTML report with charts here.") var html: String?
    @Option(help: "Calibration file for the HTML report's frontier chart (default: calibration.json in the model directory, if there is one).")
    var calibration: String?
    @Option(help: "Seconds to wait for the upstream handshake before starting.") var connectTimeout = 15.0
    @Option(help: "Log level.") var logLevel = "info"
    @Option(help: "Log format: text (plain lines) or json (one JSON object per line, for log collectors).") var logFormat: LogFormat = .text
    @Option(help: "Serve /metrics, /healthz and /readyz here (HOST:PORT; default: the node's 'metrics:' in the topology, if any).")
    var metrics: String?
    @Option(help: "Seconds to stay connected (and serving metrics) after the report is written, e.g. for a last scrape.")
    var linger = 0.0

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be from 1 to 64") }
        if !(0...19).contains(sampleNiceness) { throw ValidationError("--sample-niceness must be from 0 to 19") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be a positive number of samples per second") }
        if calibration != nil, html == nil { throw ValidationError("--calibration is for the HTML report: give --html too") }
        if !(linger >= 0 && linger <= 3600) { throw ValidationError("--linger must be from 0 to 3600 seconds") }
        if let metrics {
            do { _ = try Endpoint(parsing: metrics) } catch { throw ValidationError("--metrics: \(error)") }
        }
    }

    func run() async throws {
        let logger = NodeMain.logger(node: node, level: logLevel, format: logFormat)
        let ctx = try NodeMain.context(topology: topology, node: node, role: .device)
        // Read before the run, so that a bad file stops the device before it spends any time.
        let calibrationData = try html == nil ? nil : loadCalibration(modelDirectory: ctx.topology.modelDirectory)
        let dataset = try NodeMain.datasetPath(explicit: self.dataset, context: ctx)
        let data = try ImageDataset.load(path: dataset, for: ctx.model.spec.input, preprocessing: ctx.model.spec.preprocessing)
        let count = min(data.count, limit ?? data.count)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let metricsAddress = try self.metrics.map { try Endpoint(parsing: $0) } ?? ctx.config.metrics
        let device = try DeviceRunner(context: ctx, group: group, logger: logger, metrics: metricsAddress.map { _ in NodeMain.metrics(for: ctx) })
        let failed = Mutex(0)
        do {
            try await NodeMain.runDevice(device, metricsAt: metricsAddress, group: group, logger: logger) {
                let r = try await classify(device, data: data, count: count, context: ctx, calibration: calibrationData, logger: logger)
                failed.withLock { $0 = r.failed }
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
        if failed.withLock({ $0 }) > 0 { throw ExitCode(2) }
    }

    /// Connects, classifies the samples, writes the reports and prints the table; lingers when asked.
    func classify(_ device: DeviceRunner, data: ImageDataset, count: Int, context ctx: NodeContext, calibration calibrationData: Calibration?,
                  logger: Logger) async throws -> RunReport {
        await device.start(connectTimeout: connectTimeout)
        let bar = ProgressReporter(total: count, label: node)
        let started = Date()
        let records = await device.run(data: data, count: count, concurrency: concurrency ?? DeviceRunner.defaultConcurrency(for: ctx.config), rate: rate,
                                       lanes: threads ?? DeviceRunner.defaultLanes, niceness: sampleNiceness, timings: timings) { bar.update($0) }
        let duration = Date().timeIntervalSince(started)
        bar.finish(records.count)
        // The device link's own figures for the run, before the statistics request below adds its bytes.
        let stats = await device.linkTotals() ?? LinkTotals(link: "", connections: 0, handshakeBytes: 0, bytesSent: 0, bytesReceived: 0)
        // Every link's totals: this device's own, then what the upstream reports of its link.
        let upstreamTotals = await device.upstreamLinkTotals()
        let totals = (await device.linkTotals()).map { [$0] + upstreamTotals } ?? upstreamTotals

        var r = RunReport(records: records, exitNames: ctx.model.network.stages.map(\.exitName), inputShape: ctx.model.spec.input,
                          duration: duration, handshakeBytes: stats.handshakeBytes, thresholds: ctx.policy.thresholds,
                          codec: ctx.codec.name, fingerprint: ctx.fingerprint.hex, topology: topology, device: node)
        r.measuredDeviceLinkBytesSent = stats.bytesSent
        r.measuredDeviceLinkBytesReceived = stats.bytesReceived
        r.deviceLinkConnections = Int(stats.connections)
        r.setLinkTotals(totals)
        if let baseline { r.compare(with: try RunReport.load(URL(fileURLWithPath: baseline))) }
        if let report { try r.json().write(to: URL(fileURLWithPath: report)) }
        if let predictions {
            let lines = records.map(\.predictionLine).joined()
            try lines.write(toFile: predictions, atomically: true, encoding: .utf8)
        }
        if let html {
            try HTMLReport(input: .init(report: r, records: records, calibration: calibrationData)).write(to: URL(fileURLWithPath: html))
        }
        print(r.table, terminator: "")
        if linger > 0 {
            logger.info("report written; staying connected for \(linger) s")
            try? await Task.sleep(for: .seconds(linger))
        }
        return r
    }

    /// The `--calibration` file, or the model directory's calibration.json when there is one.
    func loadCalibration(modelDirectory: URL) throws -> Calibration? {
        if let calibration { return try Calibration.load(contentsOf: URL(fileURLWithPath: calibration)) }
        let url = modelDirectory.appendingPathComponent(Calibration.fileName)
        return FileManager.default.fileExists(atPath: url.path) ? try Calibration.load(contentsOf: url) : nil
    }
}

/// Thread-safe wrapper of the progress bar for answers arriving from many tasks.
final class ProgressReporter: Sendable {
    private let bar: Mutex<ProgressBar>
    init(total: Int, label: String) { bar = Mutex(ProgressBar(total: total, label: label)) }
    func update(_ done: Int) { bar.withLock { $0.update(done, fields: "answered") } }
    func finish(_ done: Int) { bar.withLock { $0.update(done, fields: "answered", force: true); $0.finish() } }
}

