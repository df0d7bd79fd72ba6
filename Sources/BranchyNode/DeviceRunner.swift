import BranchyData
import BranchyModel
import BranchyObservability
import BranchyReport
import BranchyTensor
import BranchyTopology
import BranchyTransport
import BranchyWire
import Foundation
import Logging
import NIOCore
import NIOPosix

/// The device: runs its stage on each sample, answers when its exit is sure, and otherwise
/// sends the feature map upstream through the `Forwarder`, keeping up to `concurrency` samples in
/// flight. Samples are computed by lanes on threads of lower priority (`LaneExecutor`), so that
/// the link's loop, which writes requests and reads answers, is not kept waiting by them.
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
    /// The upstream link's loop.
    let loop: any EventLoop

    /// The node's place in the topology, for naming where answers came from: node name to role.
    public var roles: [String: String] {
        Dictionary(context.topology.nodes.map { ($0.name, $0.role.rawValue) }, uniquingKeysWith: { a, _ in a })
    }

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

    /// Compute lanes by default: one. The link's loop moves the answers on a thread of its own, so one
    /// lane keeps a core busy; more raise throughput on an idle machine by little (the edge and the
    /// cloud need the other cores) and make every lane wait longer for a core when many devices share
    /// a machine, as in `scripts/load.sh`.
    public static let defaultLanes = 1

    /// How much lower (in nice steps) the lanes compute than the rest of the process by default:
    /// they compute only while answers are in flight, and the threads that move those answers
    /// (the link's loop, and on a shared machine the edge and the cloud) should preempt them.
    public static let defaultLaneNiceness = 10

    /// Classifies `count` samples of `data`, calling `progress` with the number answered so far as
    /// answers are taken in (one call at a time; no sample starts while one runs).
    ///
    /// The run is one task group of `lanes` child tasks; lane `k` computes samples `k`, `k + lanes`, …
    /// and keeps at most its share of `concurrency` of them in flight: a sample that must go upward
    /// is handed to the link and the lane goes on with the next, until the window is full and it
    /// waits for an answer (back-pressure). A lane computes the samples already due together, as one
    /// batch of at most the node's `maxBatch` and the free part of its window. With a `rate` (samples
    /// per second), sample `i` starts no earlier than `i / rate` seconds after the first, as frames
    /// from a camera would arrive. With
    /// `timings`, every forwarded sample asks each node upward for how long it held it, and each
    /// link's round trip (the records' hops carry them).
    public func run(data: ImageDataset, count: Int, concurrency: Int, rate: Double? = nil, lanes: Int = DeviceRunner.defaultLanes,
                    niceness: Int = DeviceRunner.defaultLaneNiceness, timings: Bool = false,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        guard count > 0 else { return [] }
        let lanes = max(1, min(lanes, count))
        let window = max(1, concurrency)
        let pace = SamplePace(rate: rate.flatMap { $0 > 0 ? $0 : nil })
        let (answers, answered) = AsyncStream.makeStream(of: [SampleRecord].self)
        let gate = ProgressGate()
        // Records are taken in as lanes hand them over, on a task of their own, while the lanes run.
        async let collected: [SampleRecord?] = {
            var records = [SampleRecord?](repeating: nil, count: count)
            var done = 0
            for await chunk in answers {
                gate.closed {
                    for record in chunk {
                        records[record.sample] = record
                        done += 1
                        progress(done)
                    }
                }
            }
            return records
        }()
        // One sample in flight: the lane runs on the link's loop, which sends its requests and reads their
        // answers with no thread change. Otherwise lanes compute on threads of their own, below the loop.
        let computing = window == 1 && lanes == 1 ? nil : LaneExecutor.group(lanes: lanes, niceness: niceness)
        let executors = computing?.executors ?? [LaneExecutor(loop: loop)]
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                // The lanes share the window: lane k takes the k-th part of it.
                let share = window / lanes + (lane < window % lanes ? 1 : 0)
                group.addTask(executorPreference: executors[lane]) {
                    await self.runLane(lane: lane, of: lanes, count: count, window: max(1, share), pace: pace, gate: gate, data: data,
                                       options: Options(timings: timings), answers: answered)
                }
            }
        }
        answered.finish()
        try? await computing?.group.shutdownGracefully()
        // A cancelled run (graceful shutdown) stops starting samples: its records are those answered.
        return await collected.compactMap { $0 }
    }

    /// One lane of `run`: its samples in order, at most `window` in flight. Its records go to `answers`
    /// in chunks: every 64 records, before it waits for a sample's time, and at its end.
    private func runLane(lane: Int, of lanes: Int, count: Int, window: Int, pace: SamplePace, gate: ProgressGate, data: ImageDataset,
                         options: Options, answers: AsyncStream<[SampleRecord]>.Continuation) async {
        let shape = [1] + context.model.spec.input
        // The records of this lane's samples in flight, as their answers arrive on the link's loop.
        let (arrived, arrive) = AsyncStream.makeStream(of: SampleRecord.self)
        var arrivals = arrived.makeAsyncIterator()
        var inFlight = 0
        var chunk: [SampleRecord] = []
        func handOver() {
            guard !chunk.isEmpty else { return }
            answers.yield(chunk)
            chunk.removeAll(keepingCapacity: true)
        }
        let maxBatch = max(1, context.config.maxBatch)
        var i = lane
        while i < count {
            if pace.rate != nil { handOver() }
            await pace.wait(for: i)
            if Task.isCancelled { break }
            while inFlight >= window {
                if let record = await arrivals.next() { chunk.append(record) }
                inFlight -= 1
            }
            await gate.pass()
            // The samples already due, up to the free part of the window and `maxBatch`, run as one
            // batch (the compiled network's grouped kernels); each is then answered or sent upward
            // on its own, exactly as when it runs alone.
            var batch = [i]
            var next = i + lanes
            while next < count, batch.count < min(window - inFlight, maxBatch), pace.isDue(next) {
                batch.append(next)
                next += lanes
            }
            i = next
            let samples = batch.map { (sample: $0, label: Int(data.labels[$0]), input: Tensor(shape: shape, data: Array(data.image($0)))) }
            for classified in classifyNow(batch: samples, options: options, whenAnswered: { arrive.yield(self.finished($0, at: pace)) }) {
                switch classified {
                case .done(let record):
                    chunk.append(finished(record, at: pace))
                case .pending:
                    inFlight += 1
                }
            }
            if chunk.count >= 64 { handOver() }
        }
        while inFlight > 0 {
            handOver()
            if let record = await arrivals.next() { chunk.append(record) }
            inFlight -= 1
        }
        handOver()
    }

    /// Stamps a record with when it finished and counts it in the metrics.
    private func finished(_ record: SampleRecord, at pace: SamplePace) -> SampleRecord {
        var record = record
        record.finishedSeconds = pace.secondsSinceStart()
        metrics?.answered(exit: record.exit, status: record.status, nanos: UInt64(max(0, record.latencySeconds * 1e9)))
        return record
    }

    /// A sample's record, or the future of it.
    enum Classified {
        /// It left at this node's exit, or upstream was not there.
        case done(SampleRecord)
        /// Completes on `loop` when upstream answers (or fails); never fails.
        case pending(EventLoopFuture<SampleRecord>)
    }

    /// What a caller may ask of one sample besides the answer.
    public struct Options: Sendable {
        /// The answer should carry the answering exit's class probabilities.
        public var probabilities = false
        /// Milliseconds the sample may take upstream (0: the link's own deadline).
        public var deadlineMillis: UInt32 = 0
        /// Answer from this device's exits only: a sample they are not sure of gets the best of
        /// them (status `degraded`, reason "device only") instead of going upward.
        public var deviceOnly = false
        /// Entropy thresholds that replace the topology's for this sample, by exit index, here and
        /// on every node upward (over version 2 links).
        public var thresholds: [Int: Float] = [:]
        /// The answer should say how long each upstream node held the sample and each link's round
        /// trip (the record's hops carry them).
        public var timings = false

        public init(probabilities: Bool = false, deadlineMillis: UInt32 = 0, deviceOnly: Bool = false,
                    thresholds: [Int: Float] = [:], timings: Bool = false) {
            self.probabilities = probabilities; self.deadlineMillis = deadlineMillis; self.deviceOnly = deviceOnly
            self.thresholds = thresholds; self.timings = timings
        }

        /// The thresholds this sample leaves by here, when it has its own.
        func policy(over base: ExitPolicy) -> ExitPolicy? { thresholds.isEmpty ? nil : base.overriding(thresholds) }

        /// What a forwarded sample asks of upstream.
        var upstreamRequest: Forwarder.Request {
            Forwarder.Request(deadlineMillis: deadlineMillis, wantsProbabilities: probabilities,
                              // -0 goes as +0: the protocol has one encoding per threshold.
                              thresholds: Dictionary(uniqueKeysWithValues: thresholds.compactMap { k, v in UInt8(exactly: k).map { ($0, v == 0 ? 0 : v) } }),
                              wantsTimings: timings)
        }
    }

    /// Computes a sample's stage here and now, on the calling thread, and gives its record: at once
    /// when it leaves at this node's exit, else when upstream answers (or fails).
    /// `whenAnswered` is called on the link's loop with the record of a forwarded sample. Off the loop,
    /// the request and every callback on its answer are set up in one task on the loop, not one hop each.
    func classifyNow(sample: Int, label: Int, input: Tensor, options: Options = Options(),
                     whenAnswered: (@Sendable (SampleRecord) -> Void)? = nil) -> Classified {
        let start = DispatchTime.now().uptimeNanoseconds
        // A device that hosts no stage sends the raw input upstream (the raw-offload baselines).
        let outcome = context.stageIndices.isEmpty ? nil : runner.run(input, probabilities: options.probabilities,
                                                                     policy: options.policy(over: runner.policy))
        return settle(outcome, sample: sample, label: label, input: input, started: start, computed: DispatchTime.now().uptimeNanoseconds,
                      options: options, whenAnswered: whenAnswered)
    }

    /// Computes several samples' stages as one batch, here and now, on the calling thread, and gives
    /// each sample's record as `classifyNow(sample:label:input:)` would for it alone (the kernels
    /// compute each sample of a batch independently, so the answers are the same bits).
    /// `options` must set no thresholds of its own (the batch runs by the node's).
    func classifyNow(batch samples: [(sample: Int, label: Int, input: Tensor)], options: Options = Options(),
                     whenAnswered: (@Sendable (SampleRecord) -> Void)? = nil) -> [Classified] {
        guard samples.count > 1 else {
            return samples.map { classifyNow(sample: $0.sample, label: $0.label, input: $0.input, options: options, whenAnswered: whenAnswered) }
        }
        precondition(options.thresholds.isEmpty, "a batch runs by the node's thresholds")
        let start = DispatchTime.now().uptimeNanoseconds
        let outcomes: [StageRunner.Outcome?] = context.stageIndices.isEmpty
            ? Array(repeating: nil, count: samples.count) : runner.run(batch: samples.map(\.input))
        let computed = DispatchTime.now().uptimeNanoseconds
        return zip(samples, outcomes).map { s, outcome in
            settle(outcome, sample: s.sample, label: s.label, input: s.input, started: start, computed: computed,
                   options: options, whenAnswered: whenAnswered)
        }
    }

    /// The record of a sample whose stages gave `outcome` (nil: the device hosts none, `input` goes
    /// upward as it is), at once or when upstream answers. `started` and `computed` (uptime ns) are
    /// when the sample arrived and when its stages were done.
    func settle(_ outcome: StageRunner.Outcome?, sample: Int, label: Int, input: Tensor, started start: UInt64, computed: UInt64,
                options: Options, whenAnswered: (@Sendable (SampleRecord) -> Void)? = nil) -> Classified {
        let context = self.context
        @Sendable func record(_ status: SampleRecord.Status, _ reason: String, exit: Int, node: String, _ out: ExitOutput?, hops: [HopCost],
                              probabilities: [Float]? = nil) -> SampleRecord {
            var r = SampleRecord(sample: sample, label: label, status: status, reason: reason, exit: exit,
                                 exitName: exit >= 0 ? context.model.network.stages[exit].exitName : "-", node: node,
                                 predicted: out?.predicted ?? -1, entropy: out?.entropy ?? .nan,
                                 latencySeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, hops: hops)
            r.probabilities = probabilities ?? out?.probabilities
            r.computeNanos = computed - start
            return r
        }
        let features: Tensor, nextStage: Int, best: (exit: Int, output: ExitOutput)?, passed: [Float]
        switch outcome {
        case nil:
            (features, nextStage, best, passed) = (input, 0, nil, [])
        case .exited(let exit, let out, let passed)?:
            var rec = record(.answered, "", exit: exit, node: context.config.name, out, hops: [])
            rec.passedEntropies = Self.entropies(before: exit, own: passed, at: context.stageIndices, upstream: [])
            return .done(rec)
        case .forward(let f, let n, let b, let p)?:
            (features, nextStage, best, passed) = (f, n, b, p)
        }
        /// The record of a sample left at this node's best exit.
        @Sendable func ownBest(_ best: (exit: Int, output: ExitOutput), _ reason: String) -> SampleRecord {
            var rec = record(.degraded, reason, exit: best.exit, node: context.config.name, best.output, hops: [])
            rec.passedEntropies = Self.entropies(before: best.exit, own: passed, at: context.stageIndices, upstream: [])
            return rec
        }
        if options.deviceOnly {
            if let best { return .done(ownBest(best, "device only")) }
            return .done(record(.failed, "device only, and this device has no exit", exit: -1, node: context.config.name, nil, hops: []))
        }
        guard let link else {
            if context.config.onUpstreamFailure == .degrade, let best {
                return .done(ownBest(best, "no upstream"))
            }
            return .done(record(.failed, "no upstream", exit: -1, node: context.config.name, nil, hops: []))
        }
        @Sendable func forward() -> EventLoopFuture<SampleRecord> {
            let answer = Forwarder(link: link).forward(sampleID: UInt64(sample), features: features, nextStage: nextStage,
                                                       request: options.upstreamRequest, best: best, passed: passed,
                                                       context: context).map(recordOf)
            if let whenAnswered { answer.whenSuccess(whenAnswered) }
            return answer
        }
        @Sendable func recordOf(_ outcome: Forwarder.Outcome) -> SampleRecord {
            switch outcome {
            case .answered(let r):
                let out = ExitOutput(predicted: Int(r.predictedClass), confidence: r.confidence, entropy: r.entropy)
                var rec = record(r.status == .degraded ? .degraded : .answered, r.reason, exit: Int(r.exitIndex), node: r.nodeName, out, hops: r.hops,
                                 probabilities: r.probabilities.isEmpty ? nil : r.probabilities)
                rec.exitName = r.exitName
                rec.passedEntropies = Self.entropies(before: Int(r.exitIndex), own: passed, at: context.stageIndices, upstream: r.passedEntropies)
                return rec
            case .degraded(let exit, let output, let failure):
                // What was spent before the failure is unknown per request; the link totals still count it.
                return ownBest((exit, output), failure.description)
            case .failed(let failure):
                return record(.failed, failure.description, exit: -1, node: context.config.name, nil, hops: [])
            }
        }
        return .pending(link.loop.inEventLoop ? forward() : link.loop.flatSubmit(forward))
    }

    /// Why `thresholds` (by exit index) cannot reach the exits they set, or nil: a version 1 link
    /// upward carries no thresholds, so only this device's own exits can be set over one.
    public func thresholdsCannotTravel(_ thresholds: [Int: Float]) -> String? {
        guard link != nil, context.config.protocolVersion < 2, thresholds.keys.contains(where: { !context.stageIndices.contains($0) }) else { return nil }
        return "this device's link speaks protocol version 1, which cannot carry thresholds for exits upstream"
    }

    /// `count` images of pixels (0 to 255, `[count, channels, rows, cols]` row-major) as the model's
    /// inputs `(1, C, H, W)`: resized, cropped, scaled and normalised as the model card says.
    /// Throws a `PreprocessingError` naming `source` when they cannot become the model's input.
    public func inputs(pixels: [Float], count: Int, channels: Int, rows: Int, cols: Int, source: String) throws -> [Tensor] {
        let model = context.model.spec.input
        guard count >= 1, channels >= 1, rows >= 1, cols >= 1, pixels.count == count * channels * rows * cols else {
            throw PreprocessingError(reason: "\(source): \(pixels.count) pixels for \(count) images of \(channels)×\(rows)×\(cols)")
        }
        let images = ImageDataset(images: pixels.map { $0 / 255 }, labels: [UInt8](repeating: 0, count: count),
                                  channels: channels, rows: rows, cols: cols)
        let prepared = try (context.model.spec.preprocessing ?? .standard).prepare(images, input: model, source: source)
        return (0..<count).map { Tensor(shape: [1] + model, data: Array(prepared.image($0))) }
    }

    /// The entropy at each exit before `exit`, by index (nil where unknown): this node's own
    /// (`own[k]` at exit `stages[k]`) and an answer's `passedEntropies`, which end just before `exit`.
    static func entropies(before exit: Int, own: [Float], at stages: [Int], upstream: [Float]) -> [Float?] {
        guard exit > 0 else { return [] }
        var e = [Float?](repeating: nil, count: exit)
        for (k, s) in stages.enumerated() where k < own.count && s < exit { e[s] = own[k] }
        for (k, h) in upstream.suffix(exit).reversed().enumerated() { e[exit - 1 - k] = h }
        return e
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
