import BranchyNode
import BranchyReport
import BranchyTensor
import Dispatch
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The device slice of a Branchy cluster, embedded in an application: it computes the device's
/// stages in this process, answers samples its exits are sure of at once, and sends the others
/// upward over the topology's mutual-TLS link, as `branchy-device` does.
///
/// ```swift
/// let device = try await BranchyDevice.open(topology: "topology/local.yaml", node: "device")
/// let answer = try await device.classify(pixels: image, channels: 1, rows: 28, cols: 28)
/// print(answer.predictedClass, answer.exitName, answer.tier, answer.upwardBytes)
/// await device.close()
/// ```
///
/// Calls may come from many tasks at once: samples that arrive together are computed as one
/// batch (the node's `maxBatch` and `maxBatchDelayMicros`), and past `maxQueued` samples in
/// flight a call fails at once with ``BranchyError/Kind/queueFull``.
public final class BranchyDevice: Sendable {
    /// The model's name (its directory's name).
    public let modelName: String
    /// One sample's shape as the model takes it: `[C, H, W]`.
    public let inputShape: [Int]
    /// The number of classes.
    public let classes: Int
    /// The exits' names, in the model's order.
    public let exitNames: [String]

    private let runner: DeviceRunner
    private let batcher: DeviceBatcher
    private let link: MultiThreadedEventLoopGroup
    private let compute: MultiThreadedEventLoopGroup
    private let roles: [String: String]
    private let nextSample = Atomic<Int>(0)

    private init(runner: DeviceRunner, batcher: DeviceBatcher, link: MultiThreadedEventLoopGroup, compute: MultiThreadedEventLoopGroup) {
        self.runner = runner
        self.batcher = batcher
        self.link = link
        self.compute = compute
        let context = runner.context
        modelName = context.topology.modelDirectory.lastPathComponent
        inputShape = context.model.spec.input
        classes = context.model.spec.classes
        exitNames = context.model.network.stages.map(\.exitName)
        roles = runner.roles
    }

    /// Loads the device node `node` of `topology` (its model, thresholds, codec and TLS files),
    /// connects upward and waits up to `connectTimeout` for the link (classifying works either way:
    /// until the link is up, samples that need upstream get the topology's failure policy).
    /// Throws when the topology, the model or the certificates are unusable, naming what and where.
    public static func open(topology: String, node: String, connectTimeout: Duration = .seconds(15), maxQueued: Int = 256,
                            logger: Logger = Logger(label: "branchy.device")) async throws -> BranchyDevice {
        let context = try NodeContext.load(topologyPath: topology, nodeName: node)
        guard context.config.role == .device else {
            throw BranchyError(.badInput, "\(topology): node '\(node)' has role \(context.config.role.rawValue); only a device node can be embedded")
        }
        let link = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let compute = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runner: DeviceRunner
        do {
            runner = try DeviceRunner(context: context, group: link, logger: logger)
        } catch {
            try? await link.shutdownGracefully()
            try? await compute.shutdownGracefully()
            throw error
        }
        let batcher = DeviceBatcher(device: runner, loop: compute.next(), capacity: maxQueued)
        let device = BranchyDevice(runner: runner, batcher: batcher, link: link, compute: compute)
        await runner.start(connectTimeout: Double(connectTimeout.components.seconds) + Double(connectTimeout.components.attoseconds) / 1e18)
        return device
    }

    /// Nil when the link upward is up (or the device has none); otherwise why not.
    public func notReady() async -> String? { await runner.notReadyBecause() }

    /// Classifies one sample given as the model takes it (`inputShape`, row-major, already prepared).
    /// `probabilities`: the answer carries every class's probability. `deviceOnly`: the device's own
    /// exits answer, nothing goes upward. `deadline`: how long the sample may take upstream.
    /// `thresholds`: entropy thresholds by exit name that replace the topology's for this call, here
    /// and upward (the last exit always answers).
    public func classify(_ input: [Float], probabilities: Bool = true, deviceOnly: Bool = false, deadline: Duration? = nil,
                         thresholds: [String: Float] = [:]) async throws -> Classification {
        try await classify(batch: [input], probabilities: probabilities, deviceOnly: deviceOnly, deadline: deadline, thresholds: thresholds)[0]
    }

    /// Classifies samples given as the model takes them, together (one batch when the device is idle).
    public func classify(batch inputs: [[Float]], probabilities: Bool = true, deviceOnly: Bool = false,
                         deadline: Duration? = nil, thresholds: [String: Float] = [:]) async throws -> [Classification] {
        let width = inputShape.reduce(1, *)
        for (i, x) in inputs.enumerated() where x.count != width {
            throw BranchyError(.badInput, "sample \(i) has \(x.count) values; the model takes \(inputShape.map(String.init).joined(separator: "×")) = \(width)")
        }
        return try await run(inputs.map { Tensor(shape: [1] + inputShape, data: $0) }, probabilities: probabilities, deviceOnly: deviceOnly,
                             deadline: deadline, thresholds: thresholds)
    }

    /// Classifies one image of pixels (0 to 255, `[channels, rows, cols]` row-major), prepared as
    /// the model card says (resize, crop, scale, normalisation, channel order).
    public func classify(pixels: [UInt8], channels: Int, rows: Int, cols: Int, probabilities: Bool = true, deviceOnly: Bool = false,
                         deadline: Duration? = nil, thresholds: [String: Float] = [:]) async throws -> Classification {
        let inputs: [Tensor]
        do {
            inputs = try runner.inputs(pixels: pixels.map(Float.init), count: 1, channels: channels, rows: rows, cols: cols, source: "pixels")
        } catch {
            throw BranchyError(.badInput, "\(error)")
        }
        return try await run(inputs, probabilities: probabilities, deviceOnly: deviceOnly, deadline: deadline, thresholds: thresholds)[0]
    }

    /// Exit names to indices, for `thresholds`; every name must be an exit before the last.
    private func exitIndices(_ thresholds: [String: Float]) throws -> [Int: Float] {
        let early = runner.context.model.network.stages.dropLast().map(\.exitName)
        var set: [Int: Float] = [:]
        for (name, t) in thresholds {
            guard let i = early.firstIndex(of: name) else {
                throw BranchyError(.badInput, "thresholds: '\(name)' is not an exit that can be set; the model's are \(early.joined(separator: ", "))")
            }
            guard t.isFinite, t >= 0, t <= DeviceInferenceBackend.Policy.anyThreshold.upperBound else {
                throw BranchyError(.badInput, "thresholds: \(t) for '\(name)' is not an entropy from 0 to 2^20")
            }
            set[i] = t
        }
        if let problem = runner.thresholdsCannotTravel(set) { throw BranchyError(.badInput, "thresholds: \(problem)") }
        return set
    }

    private func run(_ inputs: [Tensor], probabilities: Bool, deviceOnly: Bool, deadline: Duration?,
                     thresholds: [String: Float]) async throws -> [Classification] {
        var options = DeviceRunner.Options(probabilities: probabilities, deviceOnly: deviceOnly, thresholds: try exitIndices(thresholds), timings: true)
        if let deadline {
            let ms = deadline.components.seconds * 1000 + deadline.components.attoseconds / 1_000_000_000_000_000
            options.deadlineMillis = UInt32(clamping: max(1, ms))
        }
        let first = nextSample.add(inputs.count, ordering: .relaxed).oldValue
        guard let records = await batcher.classify(inputs, options: options, firstSample: first) else {
            throw BranchyError(.queueFull, "the device's queue is full (\(batcher.capacity) samples); try again later")
        }
        return try records.map { r in
            guard r.status != .failed else { throw BranchyError(.unanswered, "no exit could answer: \(r.reason)") }
            let hops = r.hops.map {
                Classification.Hop(link: $0.link, roundTrip: $0.roundTripMicros == 0 ? nil : .microseconds(Int64(clamping: $0.roundTripMicros)),
                                   upstreamTime: $0.upstreamMicros == 0 ? nil : .microseconds(Int64(clamping: $0.upstreamMicros)),
                                   requestBytes: Int(clamping: $0.requestFrameBytes), responseBytes: Int(clamping: $0.responseFrameBytes))
            }
            return Classification(exit: r.exit, exitName: r.exitName, tier: roles[r.node] ?? r.node, node: r.node, predictedClass: r.predicted,
                                  probabilities: r.probabilities, entropy: r.entropy, status: r.status == .degraded ? .degraded : .answered,
                                  reason: r.reason, upwardBytes: Int(r.hops.reduce(0) { $0 + $1.requestFrameBytes }),
                                  latency: .nanoseconds(Int64(r.latencySeconds * 1e9)), deviceTime: .nanoseconds(Int64(r.computeNanos)), hops: hops)
        }
    }

    /// Closes the link upward and stops the device's threads. Calls made after this fail.
    public func close() async {
        await runner.stop()
        try? await compute.shutdownGracefully()
        try? await link.shutdownGracefully()
    }
}
