import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The device: runs its stage on each sample, answers when its exit is sure, and otherwise
/// sends the feature map upstream, keeping up to `concurrency` samples in flight.
///
/// Samples are computed one after the other on a thread of their own, as a camera's frames would
/// be; a forwarded sample's request is handed to the link's event loop (the one thread change on
/// its way), and its answer is recorded where it arrives, on that loop. The loop only moves bytes,
/// so answers are read while the next samples are being computed.
public final class DeviceRunner: Sendable {
    /// Samples in flight by default: enough to keep the device computing while answers travel,
    /// few enough that a forwarded sample does not queue behind hundreds of others upstream.
    public static let defaultConcurrency = 32

    public let context: NodeContext
    let runner: StageRunner
    let link: UpstreamLink?
    let logger: Logger
    /// Where answers are recorded: the link's loop.
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

    /// Classifies `count` samples of `data`, calling `progress` after each answer (on the thread
    /// that computes the samples: while it runs, no new sample starts).
    ///
    /// With a `rate` (samples per second), sample `i` starts no earlier than `i / rate` seconds
    /// after the first, as frames from a camera would arrive; without one, each starts as soon
    /// as a place in the window of `concurrency` is free.
    public func run(data: IDXDataset, count: Int, concurrency: Int, rate: Double? = nil,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        guard count > 0 else { return [] }
        let run = DeviceRun(count: count)
        let done = loop.makePromise(of: [SampleRecord].self)
        let thread = Thread {
            let records = self.computeSamples(data: data, run: run, concurrency: max(1, concurrency),
                                              rate: rate.flatMap { $0 > 0 ? $0 : nil }, progress: progress)
            done.succeed(records)
        }
        thread.name = "\(context.config.name)-samples"
        thread.start()
        return (try? await done.futureResult.get()) ?? []
    }

    /// The body of the sample thread: starts each sample once the window has room and its time
    /// (with a `rate`) has come, computes its stage and hands it on; reports answers as they come.
    private func computeSamples(data: IDXDataset, run: DeviceRun, concurrency: Int, rate: Double?,
                                progress: @Sendable (Int) -> Void) -> [SampleRecord] {
        let origin = DispatchTime.now().uptimeNanoseconds
        let shape = [1] + runner.inputShape
        var reported = 0
        func report() {
            let finished = run.finished
            while reported < finished {
                reported += 1
                progress(reported)
            }
        }
        for i in 0..<run.count {
            if let rate {
                let due = origin + UInt64(Double(i) / rate * 1e9)
                while case let now = DispatchTime.now().uptimeNanoseconds, due > now {
                    usleep(UInt32(min(100_000, max(1, (due - now) / 1000))))
                    report()
                }
            }
            while i - run.finished >= concurrency {
                run.answered.wait()
                report()
            }
            let input = Tensor(shape: shape, data: Array(data.image(i)))
            switch classifyNow(sample: i, label: Int(data.labels[i]), input: input) {
            case .done(let record): run.finish(record)
            case .pending(let answer): answer.whenSuccess { run.finish($0) }  // on the link's loop
            }
            report()
        }
        while run.finished < run.count {
            run.answered.wait()
            report()
        }
        return run.records
    }

    /// One sample, start to answer.
    func classify(sample: Int, label: Int, input: Tensor) async -> SampleRecord {
        do {
            switch classifyNow(sample: sample, label: label, input: input) {
            case .done(let record): return record
            case .pending(let answer): return try await answer.get()
            }
        } catch {
            return SampleRecord(sample: sample, label: label, status: .failed, reason: "\(error)", exit: -1, exitName: "-",
                                node: context.config.name, predicted: -1, entropy: .nan, latencySeconds: 0, hops: [])
        }
    }

    /// A sample's record, or the future of it.
    enum Classified {
        /// It left at this node's exit, or upstream was not there.
        case done(SampleRecord)
        /// Completes on `loop` when upstream answers (or fails); never fails.
        case pending(EventLoopFuture<SampleRecord>)
    }

    /// Computes a sample's stage here and now, on the calling thread, and gives its record: at once
    /// when it leaves at this node's exit, else when upstream answers (or fails).
    func classifyNow(sample: Int, label: Int, input: Tensor) -> Classified {
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
            return .done(record(.answered, "", exit: exit, node: context.config.name, out, hops: []))
        case .forward(let features, let nextStage, let best):
            @Sendable func fallback(_ why: String) -> SampleRecord {
                context.config.onUpstreamFailure == .degrade
                    ? record(.degraded, why, exit: best.exit, node: context.config.name, best.output, hops: [])
                    : record(.failed, why, exit: -1, node: context.config.name, nil, hops: [])
            }
            guard let link else { return .done(fallback("no upstream")) }
            let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
            let request = InferRequest(sampleID: UInt64(sample), stageIndex: UInt8(nextStage), features: context.codec.encode(item))
            return .pending(link.send(request).map { reply -> SampleRecord in
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
            })
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

/// The answers of one `DeviceRunner.run`: they arrive on the link's loop, or on the sample thread
/// for samples that leave at the device; each one signals `answered`.
private final class DeviceRun: Sendable {
    let count: Int
    let answered = DispatchSemaphore(value: 0)
    private let state: Mutex<(records: [SampleRecord?], finished: Int)>

    init(count: Int) {
        self.count = count
        state = Mutex(([SampleRecord?](repeating: nil, count: count), 0))
    }

    var finished: Int { state.withLock { $0.finished } }
    var records: [SampleRecord] { state.withLock { $0.records.map { $0! } } }

    func finish(_ record: SampleRecord) {
        state.withLock { s in
            s.records[record.sample] = record
            s.finished += 1
        }
        answered.signal()
    }
}
