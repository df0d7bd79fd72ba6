import BranchyBatching
import BranchyReport
import BranchyTensor
import Dispatch
import NIOCore
import Synchronization

/// The device's dynamic batcher for samples from applications (the front door): the rules of
/// `BatchQueue` that the edge and cloud batch by, on a compute loop of its own. Samples that
/// arrive together run through the device's stages as one batch; those not sure go upward one by
/// one, as in a batch run. At most `capacity` samples are taken at a time (waiting, computing or
/// upstream): past that, `classify` refuses at once rather than queueing. A lone sample that finds
/// nothing waiting or computing is computed at once on the caller's thread, saving the two thread
/// hops of the queue (the batch it would have formed holds that one sample anyway).
public final class DeviceBatcher: Sendable {
    struct Item {
        let sample: Int
        let input: Tensor
        let options: DeviceRunner.Options
        /// When the sample arrived (uptime nanoseconds).
        let arrival: UInt64
        let promise: EventLoopPromise<SampleRecord>
    }

    public let device: DeviceRunner
    /// The thread the batches are computed on.
    let loop: any EventLoop
    /// Most samples taken at once.
    public let capacity: Int
    private let queue: NIOLoopBoundBox<BatchQueue<Item>>
    private let taken = Atomic<Int>(0)
    /// Samples waiting for or in a computation (queued, in a batch, or computed inline).
    private let computing = Atomic<Int>(0)

    /// Batches by the node's `maxBatch` and `maxBatchDelayMicros` unless given, computing on `loop`.
    public convenience init(device: DeviceRunner, loop: any EventLoop, capacity: Int) {
        self.init(device: device, loop: loop, capacity: capacity, maxBatch: device.context.config.maxBatch,
                  maxDelayMicros: device.context.config.maxBatchDelayMicros)
    }

    init(device: DeviceRunner, loop: any EventLoop, capacity: Int, maxBatch: Int, maxDelayMicros: Int) {
        self.device = device
        self.loop = loop
        self.capacity = max(1, capacity)
        queue = .makeBoxSendingValue(BatchQueue(maxBatch: maxBatch, maxDelayNanos: Int64(maxDelayMicros) * 1000), eventLoop: loop)
    }

    /// Samples taken and not yet answered.
    public var load: Int { taken.load(ordering: .relaxed) }

    /// Classifies `inputs` (each `(1, C, H, W)` as the model takes it) together, or nil at once when
    /// taking them would pass `capacity`. Each record is the sample's answer; a sample that could
    /// not be answered has status `failed` and its reason.
    public func classify(_ inputs: [Tensor], options: DeviceRunner.Options, firstSample: Int = 0) async -> [SampleRecord]? {
        guard reserve(inputs.count) else { return nil }
        if inputs.count == 1, computing.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
            let record = await classifyInline(sample: firstSample, input: inputs[0], options: options)
            taken.subtract(1, ordering: .relaxed)
            return [record]
        }
        let futures = inputs.enumerated().map { classify(sample: firstSample + $0.offset, input: $0.element, options: options) }
        var records: [SampleRecord] = []
        records.reserveCapacity(futures.count)
        for f in futures { if let r = try? await f.get() { records.append(r) } }
        return records
    }

    /// Takes `count` samples at once, or none when that would pass `capacity` (false).
    func reserve(_ count: Int) -> Bool {
        let now = taken.add(count, ordering: .relaxed).newValue
        guard now <= capacity else {
            taken.subtract(count, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Classifies one sample reserved with `reserve`; the record completes when it is answered
    /// (never fails) and frees its place.
    func classify(sample: Int, input: Tensor, options: DeviceRunner.Options) -> EventLoopFuture<SampleRecord> {
        computing.add(1, ordering: .relaxed)
        let promise = loop.makePromise(of: SampleRecord.self)
        let item = Item(sample: sample, input: input, options: options, arrival: Self.now(), promise: promise)
        loop.execute { self.handle(self.queue.value.arrive(item, now: Int64(item.arrival))) }
        return promise.futureResult.always { _ in self.taken.subtract(1, ordering: .relaxed) }
    }

    /// Computes one sample here (the caller holds the only place in `computing`), then waits for
    /// upstream's answer when the device is not sure of it.
    private func classifyInline(sample: Int, input: Tensor, options: DeviceRunner.Options) async -> SampleRecord {
        let arrival = Self.now()
        let outcome: StageRunner.Outcome? = device.context.stageIndices.isEmpty ? nil
            : device.runner.run(input, probabilities: options.probabilities, policy: options.policy(over: device.runner.policy))
        let computed = Self.now()
        computing.subtract(1, ordering: .relaxed)
        switch device.settle(outcome, sample: sample, label: -1, input: input, started: arrival, computed: computed, options: options) {
        case .done(let record): return record
        case .pending(let answer): return (try? await answer.get()) ?? SampleRecord(
            sample: sample, label: -1, status: .failed, reason: "the answer was lost", exit: -1, exitName: "-", node: device.context.config.name,
            predicted: -1, entropy: .nan, latencySeconds: Double(Self.now() - arrival) / 1e9, hops: [])
        }
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private func handle(_ first: BatchQueue<Item>.Step) {
        var step = first
        while true {
            switch step {
            case .none:
                return
            case .checkAtEndOfBurst:
                // Runs after the tasks already queued on the loop: samples submitted together join.
                loop.execute { self.handle(self.queue.value.burstEnded(now: Int64(Self.now()))) }
                return
            case .wake(let due):
                loop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(due))) {
                    self.handle(self.queue.value.timerFired(due: due, now: Int64(Self.now())))
                }
                return
            case .run(let batch):
                run(batch)
                step = queue.value.batchFinished(now: Int64(Self.now()))
            }
        }
    }

    /// Computes a batch here and settles each sample: answered now, or when upstream answers.
    private func run(_ batch: [Item]) {
        let outcomes: [StageRunner.Outcome?]
        if device.context.stageIndices.isEmpty {
            outcomes = Array(repeating: nil, count: batch.count)
        } else {
            let wanted = batch.map(\.options.probabilities)
            outcomes = device.runner.run(batch: batch.map(\.input), probabilities: wanted.contains(true) ? wanted : [],
                                         policies: batch.map { $0.options.policy(over: device.runner.policy) })
        }
        let computed = Self.now()
        computing.subtract(batch.count, ordering: .relaxed)
        for (item, outcome) in zip(batch, outcomes) {
            switch device.settle(outcome, sample: item.sample, label: -1, input: item.input, started: item.arrival, computed: computed,
                                 options: item.options) {
            case .done(let record): item.promise.succeed(record)
            case .pending(let answer): answer.cascade(to: item.promise)
            }
        }
    }
}
