import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyWire
import Foundation
import Logging
import NIOCore
import NIOPosix

/// The device: runs its stage on each sample, answers when its exit is sure, and otherwise
/// sends the feature map upstream, keeping up to `concurrency` samples in flight.
///
/// Everything runs on one event loop, the upstream link's: a sample is computed there, its
/// request written to the link with no thread hop, and its answer recorded where it arrives.
/// The loop computes one sample per turn, so answers are read between samples.
public final class DeviceRunner: Sendable {
    /// Samples in flight by default: enough to keep the device computing while answers travel,
    /// few enough that a forwarded sample does not queue behind hundreds of others upstream.
    public static let defaultConcurrency = 32

    public let context: NodeContext
    let runner: StageRunner
    let link: UpstreamLink?
    let logger: Logger
    /// Where samples are computed and answers recorded: the link's loop.
    let loop: any EventLoop

    public init(context: NodeContext, group: any EventLoopGroup, logger: Logger) throws {
        if context.upstream != nil { try TLSLayer.selfCheck(context.config.tls, node: context.config.name) }
        self.context = context
        self.runner = StageRunner(context: context)
        self.logger = logger
        let loop = group.next()
        self.loop = loop
        self.link = context.upstream == nil ? nil : try UpstreamLink(context: context, loop: loop, logger: logger)
    }

    /// The window a device keeps by default: `defaultConcurrency`, at most the link's `maxInFlight`.
    public static func defaultConcurrency(for config: NodeConfig) -> Int { min(defaultConcurrency, config.maxInFlight) }

    /// Connects upstream (waiting up to `connectTimeout` seconds; classification starts either way).
    public func start(connectTimeout: Double) async {
        guard let link else { return }
        link.start()
        do {
            try await link.waitUntilReady(timeoutMillis: Int64(connectTimeout * 1000)).get()
        } catch {
            logger.warning("\(error); samples that need upstream will be answered by policy '\(context.config.onUpstreamFailure.rawValue)'")
        }
    }

    /// Classifies `count` samples of `data`, calling `progress` (on the device's loop) after each answer.
    ///
    /// With a `rate` (samples per second), sample `i` starts no earlier than `i / rate` seconds
    /// after the first, as frames from a camera would arrive; without one, each starts as soon
    /// as a place in the window of `concurrency` is free.
    public func run(data: IDXDataset, count: Int, concurrency: Int, rate: Double? = nil,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        guard count > 0 else { return [] }
        let done = loop.makePromise(of: [SampleRecord].self)
        let pacing = rate.flatMap { $0 > 0 ? $0 : nil }
        loop.execute {
            let driver = DeviceDriver(device: self, data: data, count: count, concurrency: max(1, concurrency), rate: pacing,
                                      progress: progress, done: done)
            driver.pump()
        }
        return (try? await done.futureResult.get()) ?? []
    }

    /// One sample, start to answer.
    func classify(sample: Int, label: Int, input: Tensor) async -> SampleRecord {
        let future = loop.flatSubmit { self.classifyOnLoop(sample: sample, label: label, input: input) }
        do {
            return try await future.get()
        } catch {
            return SampleRecord(sample: sample, label: label, status: .failed, reason: "\(error)", exit: -1, exitName: "-",
                                node: context.config.name, predicted: -1, entropy: .nan, latencySeconds: 0, hops: [])
        }
    }

    /// Computes a sample's stage here and now, and gives its record: at once when it leaves at
    /// this node's exit, else when upstream answers (or fails). The future never fails. On `loop`.
    func classifyOnLoop(sample: Int, label: Int, input: Tensor) -> EventLoopFuture<SampleRecord> {
        let start = DispatchTime.now().uptimeNanoseconds
        let context = self.context
        @Sendable func record(_ status: SampleRecord.Status, _ reason: String, exit: Int, node: String, _ out: ExitOutput?, hops: [HopCost]) -> SampleRecord {
            SampleRecord(sample: sample, label: label, status: status, reason: reason, exit: exit,
                         exitName: exit >= 0 ? context.model.network.stages[exit].exitName : "-", node: node,
                         predicted: out?.predicted ?? -1, entropy: out?.entropy ?? .nan,
                         latencySeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, hops: hops)
        }
        switch runner.run(input) {
        case .exited(let exit, let out):
            return loop.makeSucceededFuture(record(.answered, "", exit: exit, node: context.config.name, out, hops: []))
        case .forward(let features, let nextStage, let best):
            @Sendable func fallback(_ why: String) -> SampleRecord {
                context.config.onUpstreamFailure == .degrade
                    ? record(.degraded, why, exit: best.exit, node: context.config.name, best.output, hops: [])
                    : record(.failed, why, exit: -1, node: context.config.name, nil, hops: [])
            }
            guard let link else { return loop.makeSucceededFuture(fallback("no upstream")) }
            let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
            let request = InferRequest(sampleID: UInt64(sample), stageIndex: UInt8(nextStage), features: context.codec.encode(item))
            return link.send(request).map { reply -> SampleRecord in
                let r = reply.result
                let exits = context.model.network.stages.count
                guard Int(r.exitIndex) < exits else {
                    return fallback("upstream answered with exit \(r.exitIndex), but the model has \(exits) exits")
                }
                let out = ExitOutput(predicted: Int(r.predictedClass), confidence: r.confidence, entropy: r.entropy)
                var rec = record(r.status == .degraded ? .degraded : .answered, r.reason, exit: Int(r.exitIndex), node: r.nodeName, out,
                                 hops: [reply.cost] + r.hops)
                rec.exitName = r.exitName
                return rec
            }.recover { error in
                var rec = fallback("\(error)")
                // What was spent before the failure is unknown per request; the link totals still count it.
                rec.hops = []
                return rec
            }
        }
    }

    /// What the upstream link measured below TLS.
    public struct LinkStatistics: Sendable {
        public var handshakeBytes: UInt64 = 0
        public var connections = 0
        public var bytesSent: UInt64 = 0
        public var bytesReceived: UInt64 = 0
    }

    /// Handshake bytes, connection count and socket byte totals of the upstream link.
    public func linkStatistics() async -> LinkStatistics {
        guard let link else { return LinkStatistics() }
        return (try? await link.loop.submit {
            LinkStatistics(handshakeBytes: link.handshakeBytes, connections: link.connections,
                           bytesSent: link.measuredBytes.sent, bytesReceived: link.measuredBytes.received)
        }.get()) ?? LinkStatistics()
    }

    public func stop() async {
        _ = try? await link?.stop().get()
    }
}

/// One run of `DeviceRunner.run`, on the device's loop: starts samples while the window has room
/// (one per turn of the loop, so that answers are read in between), paced by `rate` if given.
private final class DeviceDriver {
    let device: DeviceRunner
    let data: IDXDataset
    let count: Int
    let concurrency: Int
    let rate: Double?
    let progress: @Sendable (Int) -> Void
    let done: EventLoopPromise<[SampleRecord]>
    let origin = NIODeadline.now()
    var records: [SampleRecord?]
    var next = 0
    var finished = 0
    var inFlight = 0
    /// True while a `pump` is scheduled.
    var scheduled = false

    init(device: DeviceRunner, data: IDXDataset, count: Int, concurrency: Int, rate: Double?,
         progress: @escaping @Sendable (Int) -> Void, done: EventLoopPromise<[SampleRecord]>) {
        self.device = device
        self.data = data
        self.count = count
        self.concurrency = concurrency
        self.rate = rate
        self.progress = progress
        self.done = done
        records = [SampleRecord?](repeating: nil, count: count)
    }

    /// Starts the next sample if the window and the pace allow, then schedules itself again.
    func pump() {
        scheduled = false
        guard next < count, inFlight < concurrency else { return }
        let loop = device.loop.assumeIsolated()
        if let rate {
            let due = origin + .nanoseconds(Int64(Double(next) / rate * 1e9))
            if due > .now() {
                scheduled = true
                loop.scheduleTask(deadline: due) { self.pump() }
                return
            }
        }
        let i = next
        next += 1
        inFlight += 1
        let input = Tensor(shape: [1] + device.runner.inputShape, data: Array(data.image(i)))
        device.classifyOnLoop(sample: i, label: Int(data.labels[i]), input: input).assumeIsolated().whenSuccess { record in
            self.finish(record)
        }
        schedule()
    }

    private func schedule() {
        guard !scheduled, next < count, inFlight < concurrency else { return }
        scheduled = true
        device.loop.assumeIsolated().execute { self.pump() }
    }

    private func finish(_ record: SampleRecord) {
        records[record.sample] = record
        inFlight -= 1
        finished += 1
        progress(finished)
        if finished == count {
            done.succeed(records.map { $0! })
        } else {
            schedule()
        }
    }
}
