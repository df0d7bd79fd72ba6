import BranchyData
import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import Logging
import NIOCore
import NIOPosix

/// The device: runs its stage on each sample, answers when its exit is sure, and otherwise
/// sends the feature map upstream, keeping up to `concurrency` requests in flight.
public final class DeviceRunner: Sendable {
    public let context: NodeContext
    let runner: StageRunner
    let link: UpstreamLink?
    let logger: Logger

    public init(context: NodeContext, group: any EventLoopGroup, logger: Logger) throws {
        if context.upstream != nil { try TLSLayer.selfCheck(context.config.tls, node: context.config.name) }
        self.context = context
        self.runner = StageRunner(context: context)
        self.logger = logger
        self.link = context.upstream == nil ? nil : try UpstreamLink(context: context, loop: group.next(), logger: logger)
    }

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

    /// Classifies `count` samples of `data`, calling `progress` after each answer.
    ///
    /// With a `rate` (samples per second), sample `i` starts no earlier than `i / rate` seconds
    /// after the first, as frames from a camera would arrive; without one, each starts as soon
    /// as a place in the window of `concurrency` is free.
    public func run(data: IDXDataset, count: Int, concurrency: Int, rate: Double? = nil,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        let shape = runner.inputShape
        var records = [SampleRecord?](repeating: nil, count: count)
        let clock = ContinuousClock()
        let origin = clock.now
        await withTaskGroup(of: SampleRecord.self) { group in
            var next = 0, done = 0
            func add() async {
                if let rate, rate > 0 {
                    let due = origin.advanced(by: .seconds(Double(next) / rate))
                    if due > clock.now { try? await clock.sleep(until: due) }
                }
                let i = next
                next += 1
                let pixels = Array(data.image(i))
                let label = Int(data.labels[i])
                group.addTask { await self.classify(sample: i, label: label, input: Tensor(shape: [1] + shape, data: pixels)) }
            }
            while next < min(count, max(1, concurrency)) { await add() }
            while let r = await group.next() {
                records[r.sample] = r
                done += 1
                progress(done)
                if next < count { await add() }
            }
        }
        return records.map { $0! }
    }

    /// One sample, start to answer.
    func classify(sample: Int, label: Int, input: Tensor) async -> SampleRecord {
        let start = DispatchTime.now().uptimeNanoseconds
        func record(_ status: SampleRecord.Status, _ reason: String, exit: Int, node: String, _ out: ExitOutput?, hops: [HopCost]) -> SampleRecord {
            SampleRecord(sample: sample, label: label, status: status, reason: reason, exit: exit,
                         exitName: exit >= 0 ? context.model.network.stages[exit].exitName : "-", node: node,
                         predicted: out?.predicted ?? -1, entropy: out?.entropy ?? .nan,
                         latencySeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, hops: hops)
        }
        switch runner.run(input) {
        case .exited(let exit, let out):
            return record(.answered, "", exit: exit, node: context.config.name, out, hops: [])
        case .forward(let features, let nextStage, let best):
            let fallback = { (why: String) -> SampleRecord in
                self.context.config.onUpstreamFailure == .degrade
                    ? record(.degraded, why, exit: best.exit, node: self.context.config.name, best.output, hops: [])
                    : record(.failed, why, exit: -1, node: self.context.config.name, nil, hops: [])
            }
            guard let link else { return fallback("no upstream") }
            let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
            let request = InferRequest(sampleID: UInt64(sample), stageIndex: UInt8(nextStage), features: context.codec.encode(item))
            do {
                let reply = try await link.send(request).get()
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
            } catch {
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
