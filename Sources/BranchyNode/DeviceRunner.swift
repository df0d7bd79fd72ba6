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
/// A sample that starts while nothing else is in flight is computed on the upstream link's event
/// loop and its request written there: no thread change on its way. Samples that start while
/// others are in flight are computed on sample threads of lower priority, so that the loop stays
/// free to read answers (a loop that computed them would run its own tasks back to back and read
/// no socket until the window filled); their requests take one hop to the loop. Every answer is
/// recorded where it arrives, on the loop.
public final class DeviceRunner: Sendable {
    /// Samples in flight by default: enough to keep the device computing while answers travel,
    /// few enough that a forwarded sample does not queue behind hundreds of others upstream.
    public static let defaultConcurrency = 16

    public let context: NodeContext
    let runner: StageRunner
    let link: UpstreamPool?
    let logger: Logger
    /// The device's metrics, when it serves them (`--metrics`).
    public let metrics: NodeMetrics?
    /// Where answers are recorded and samples started while nothing is in flight are computed: the link's loop.
    let loop: any EventLoop

    public init(context: NodeContext, group: any EventLoopGroup, logger: Logger, metrics: NodeMetrics? = nil) throws {
        if context.upstream != nil { try TLSLayer.selfCheck(context.config.tls, node: context.config.name) }
        self.context = context
        self.runner = StageRunner(context: context)
        self.logger = logger
        let loop = group.next()
        self.loop = loop
        self.metrics = metrics
        self.link = context.upstream == nil ? nil : try UpstreamPool(context: context, loop: loop, logger: logger, metrics: metrics)
        metrics?.setThresholds(context.policy.thresholds)
        if let metrics, let link = self.link {
            metrics.onScrape { metrics.ready.set(to: await link.notReadyBecause() == nil ? 1 : 0) }
        } else {
            metrics?.ready.set(to: 1)
        }
    }

    /// Nil when the upstream link is up (or there is none); otherwise why not.
    public func notReadyBecause() async -> String? {
        await link?.notReadyBecause()
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

    /// Sample threads by default: one. With the loop, which computes when nothing is in flight,
    /// that keeps a core busy; more threads raise throughput on an idle machine by little (the
    /// edge and the cloud need the other cores) and make every thread wait longer for a core
    /// when many devices share a machine, as in `scripts/load.sh`.
    public static let defaultThreads = 1

    /// How much lower (in nice steps) the sample threads run than the rest of the process by
    /// default: they compute only while answers are in flight, and the threads that move those
    /// answers (the link's loop, and on a shared machine the edge and the cloud) should preempt them.
    public static let defaultSampleThreadNiceness = 10

    /// Classifies `count` samples of `data`, calling `progress` after each answer (on a sample
    /// thread, one call at a time; while it runs, no sample starts).
    ///
    /// A sample that starts while nothing is in flight is computed on the link's loop and its
    /// request written there (no thread hop); samples that start while others are in flight are
    /// computed on `threads` sample threads, so that the loop stays free to read answers.
    ///
    /// With a `rate` (samples per second), sample `i` starts no earlier than `i / rate` seconds
    /// after the first, as frames from a camera would arrive; without one, each starts as soon
    /// as a place in the window of `concurrency` is free.
    public func run(data: ImageDataset, count: Int, concurrency: Int, rate: Double? = nil, threads: Int = 1,
                    niceness: Int = DeviceRunner.defaultSampleThreadNiceness,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        guard count > 0 else { return [] }
        let lanes = max(1, threads)
        let run = DeviceRun(device: self, data: data, count: count, concurrency: max(1, concurrency), threads: lanes,
                            rate: rate.flatMap { $0 > 0 ? $0 : nil }, progress: progress, done: loop.makePromise())
        for lane in 0..<lanes {
            let thread = Thread {
                if niceness > 0 { Self.lowerThisThreadsPriority(by: Int32(min(niceness, 19))) }
                run.sampleThread()
            }
            thread.name = "\(context.config.name)-samples-\(lane)"
            thread.start()
        }
        run.pokeLoop()
        return (try? await run.done.futureResult.get()) ?? []
    }

    /// Lowers the calling thread's scheduling priority (Linux: its own nice value; elsewhere nothing).
    static func lowerThisThreadsPriority(by steps: Int32) {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0, let tid = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: "/").last.flatMap({ id_t($0) }) else { return }
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let current = getpriority(which, tid)
        _ = setpriority(which, tid, min(19, current + steps))
        #endif
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
        // A device that hosts no stage sends the raw input upstream (the raw-offload baselines).
        let features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput)?
        if context.stageIndices.isEmpty {
            (features, nextStage, best) = (input, 0, nil)
        } else {
            switch runner.run(input) {
            case .exited(let exit, let out):
                return .done(record(.answered, "", exit: exit, node: context.config.name, out, hops: []))
            case .forward(let f, let n, let b):
                (features, nextStage, best) = (f, n, b)
            }
        }
        @Sendable func fallback(_ why: String) -> SampleRecord {
            if context.config.onUpstreamFailure == .degrade, let best {
                return record(.degraded, why, exit: best.exit, node: context.config.name, best.output, hops: [])
            }
            return record(.failed, why, exit: -1, node: context.config.name, nil, hops: [])
        }
        do {
            guard let link else { return .done(fallback("no upstream")) }
            let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
            let request = InferRequest(sampleID: UInt64(sample), stageIndex: UInt8(nextStage), features: context.encodeForUpstream(item))
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
            let t = link.totals
            return LinkStatistics(handshakeBytes: t.handshakeBytes, connections: Int(t.connections),
                                  bytesSent: t.bytesSent, bytesReceived: t.bytesReceived)
        }.get()) ?? LinkStatistics()
    }

    /// The device link's totals, handshakes included.
    public func linkTotals() async -> LinkTotals? {
        guard let link else { return nil }
        return try? await link.loop.submit { link.totals }.get()
    }

    /// What the upstream node reports of its own upstream link (nothing from the root). Version 1
    /// has no `statsRequest`: a device whose link speaks it asks over a short version-2 connection
    /// of its own, opened after the run and not counted in the run's bytes.
    public func upstreamLinkTotals() async -> [LinkTotals] {
        guard let link else { return [] }
        if let totals = try? await link.upstreamTotals().get() { return totals }
        guard context.config.protocolVersion < 2 else { return [] }
        return await upstreamLinkTotalsOverVersion2()
    }

    private func upstreamLinkTotalsOverVersion2() async -> [LinkTotals] {
        var config = context.config
        config.protocolVersion = 2
        do {
            let v2 = try NodeContext(topology: context.topology, config: config, model: context.model, replica: context.replica)
            let query = try UpstreamPool(context: v2, loop: loop, logger: logger)
            query.start()
            defer { _ = query.stop() }
            try await query.waitUntilReady(timeoutMillis: 3_000).get()
            return try await query.upstreamTotals().get()
        } catch {
            logger.warning("could not ask upstream for its link totals over protocol version 2: \(error); the report counts this device's link only")
            return []
        }
    }

    public func stop() async {
        _ = try? await link?.stop().get()
    }
}

/// One `DeviceRunner.run`, shared by the link's loop and the sample threads: which sample is
/// next, the window, the records and the progress reported. All of it is guarded by `condition`.
private final class DeviceRun: @unchecked Sendable {
    let device: DeviceRunner
    let data: ImageDataset
    let count: Int
    let concurrency: Int
    let rate: Double?
    let progress: @Sendable (Int) -> Void
    let done: EventLoopPromise<[SampleRecord]>
    let origin = DispatchTime.now().uptimeNanoseconds
    private let shape: [Int]
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var records: [SampleRecord?]
    private var next = 0
    private var finished = 0
    private var reported = 0
    /// True while a `progress` call runs: no sample starts meanwhile.
    private var reporting = false
    private var loopPumpScheduled = false
    private var threadsLeft: Int

    init(device: DeviceRunner, data: ImageDataset, count: Int, concurrency: Int, threads: Int, rate: Double?,
         progress: @escaping @Sendable (Int) -> Void, done: EventLoopPromise<[SampleRecord]>) {
        self.device = device
        self.data = data
        self.count = count
        self.concurrency = concurrency
        self.rate = rate
        self.progress = progress
        self.done = done
        shape = [1] + device.context.model.spec.input
        records = [SampleRecord?](repeating: nil, count: count)
        threadsLeft = threads
    }

    /// The next sample for the loop (`onLoop`, only when nothing is in flight) or for a sample
    /// thread (only when something is). Under `condition`.
    private func claimLocked(onLoop: Bool) -> Int? {
        guard next < count, !reporting else { return nil }
        let inFlight = next - finished
        guard inFlight < concurrency, onLoop == (inFlight == 0) else { return nil }
        next += 1
        // Now something is in flight: the sample threads may start the next ones.
        if onLoop, concurrency > 1 { condition.broadcast() }
        return next - 1
    }

    private func due(_ i: Int) -> UInt64? {
        rate.map { origin + UInt64(Double(i) / $0 * 1e9) }
    }

    /// Computes sample `i` on the calling thread and hands it on.
    private func start(_ i: Int) {
        switch device.classifyNow(sample: i, label: Int(data.labels[i]), input: Tensor(shape: shape, data: Array(data.image(i)))) {
        case .done(let record): finish(record)
        case .pending(let answer): answer.whenSuccess { self.finish($0) }  // on the link's loop
        }
    }

    private func finish(_ record: SampleRecord) {
        var record = record
        let now = DispatchTime.now().uptimeNanoseconds
        record.finishedSeconds = Double(now &- origin) / 1e9
        device.metrics?.answered(exit: record.exit, status: record.status, nanos: UInt64(max(0, record.latencySeconds * 1e9)))
        condition.lock()
        records[record.sample] = record
        finished += 1
        let idle = next == finished
        condition.broadcast()
        condition.unlock()
        if idle { pokeLoop() }
    }

    /// Has the loop look for a sample to start (it starts one when nothing is in flight).
    func pokeLoop() {
        condition.lock()
        let schedule = !loopPumpScheduled
        loopPumpScheduled = true
        condition.unlock()
        if schedule { device.loop.execute { self.pumpOnLoop() } }
    }

    private func pumpOnLoop() {
        condition.lock()
        loopPumpScheduled = false
        if next < count, next == finished, !reporting, let due = due(next), due > DispatchTime.now().uptimeNanoseconds {
            loopPumpScheduled = true
            condition.unlock()
            device.loop.scheduleTask(deadline: .uptimeNanoseconds(due)) { self.pumpOnLoop() }
            return
        }
        let i = claimLocked(onLoop: true)
        condition.unlock()
        if let i { start(i) }
    }

    /// The body of a sample thread: reports progress, and starts samples while others are in flight.
    func sampleThread() {
        condition.lock()
        while true {
            if reported < finished, !reporting {
                reporting = true
                let (from, to) = (reported, finished)
                condition.unlock()
                for n in (from + 1)...to { progress(n) }
                condition.lock()
                reported = to
                reporting = false
                let idle = next == finished
                condition.broadcast()
                if idle {
                    condition.unlock()
                    pokeLoop()
                    condition.lock()
                }
                continue
            }
            if reported == count { break }
            if let i = claimLocked(onLoop: false) {
                condition.unlock()
                if let due = due(i) {
                    while case let now = DispatchTime.now().uptimeNanoseconds, due > now {
                        usleep(UInt32(min(100_000, max(1, (due - now) / 1000))))
                    }
                }
                start(i)
                condition.lock()
                continue
            }
            condition.wait()
        }
        threadsLeft -= 1
        let last = threadsLeft == 0
        let all = last ? records.map { $0! } : []
        condition.unlock()
        if last { done.succeed(all) }
    }
}
