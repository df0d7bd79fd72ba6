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

    /// Threads that compute samples by default: two on a machine with two cores or more.
    public static var defaultThreads: Int { min(2, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    /// How much lower (in nice steps) the sample threads run than the rest of the process: the
    /// loop that moves bytes, and on a shared machine the edge and cloud, preempt them at once.
    public static let sampleThreadNiceness: Int32 = 19

    /// Classifies `count` samples of `data` on `threads` threads, calling `progress` after each
    /// answer (on a sample thread, one call at a time: while it runs, that thread starts no sample).
    ///
    /// With a `rate` (samples per second), sample `i` starts no earlier than `i / rate` seconds
    /// after the first, as frames from a camera would arrive; without one, each starts as soon
    /// as a place in the window of `concurrency` is free.
    public func run(data: IDXDataset, count: Int, concurrency: Int, rate: Double? = nil, threads: Int = 1,
                    progress: @escaping @Sendable (Int) -> Void) async -> [SampleRecord] {
        guard count > 0 else { return [] }
        let lanes = max(1, min(threads, count))
        let run = DeviceRun(count: count, concurrency: max(1, concurrency), threads: lanes)
        let done = loop.makePromise(of: [SampleRecord].self)
        let origin = DispatchTime.now().uptimeNanoseconds
        let pace = rate.flatMap { $0 > 0 ? $0 : nil }
        for lane in 0..<lanes {
            let thread = Thread {
                Self.lowerThisThreadsPriority(by: Self.sampleThreadNiceness)
                self.computeSamples(data: data, run: run, origin: origin, rate: pace, progress: progress)
                if run.threadEnded() { done.succeed(run.records) }
            }
            thread.name = "\(context.config.name)-samples-\(lane)"
            thread.start()
        }
        return (try? await done.futureResult.get()) ?? []
    }

    /// The body of a sample thread: takes the next sample once the window has room and its time
    /// (with a `rate`) has come, computes its stage and hands it on; reports answers as they come.
    private func computeSamples(data: IDXDataset, run: DeviceRun, origin: UInt64, rate: Double?,
                                progress: @Sendable (Int) -> Void) {
        let shape = [1] + runner.inputShape
        while true {
            switch run.claim() {
            case .allStarted:
                while run.finished < run.count {
                    run.answered.wait()
                    run.report(progress)
                }
                run.report(progress)
                return
            case .windowFull:
                run.answered.wait()
                run.report(progress)
            case .sample(let i):
                if let rate {
                    let due = origin + UInt64(Double(i) / rate * 1e9)
                    while case let now = DispatchTime.now().uptimeNanoseconds, due > now {
                        usleep(UInt32(min(100_000, max(1, (due - now) / 1000))))
                        run.report(progress)
                    }
                }
                let input = Tensor(shape: shape, data: Array(data.image(i)))
                switch classifyNow(sample: i, label: Int(data.labels[i]), input: input) {
                case .done(let record): run.finish(record, signal: false)
                case .pending(let answer): answer.whenSuccess { run.finish($0, signal: true) }  // on the link's loop
                }
                run.report(progress)
            }
        }
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

/// The state of one `DeviceRunner.run`, shared by its sample threads and the link's loop: which
/// sample is next, the window, the records. Forwarded samples' answers arrive on the loop and
/// signal `answered`; samples that leave at the device finish on their sample thread.
private final class DeviceRun: Sendable {
    enum Claim { case sample(Int), windowFull, allStarted }

    private struct State {
        var records: [SampleRecord?]
        var next = 0
        var finished = 0
        var threadsLeft: Int
    }

    let count: Int
    let concurrency: Int
    let threads: Int
    let answered = DispatchSemaphore(value: 0)
    private let state: Mutex<State>
    /// The last count passed to `progress`; held while calling it, so calls come one at a time, in order.
    private let reported = Mutex(0)

    init(count: Int, concurrency: Int, threads: Int) {
        self.count = count
        self.concurrency = concurrency
        self.threads = threads
        state = Mutex(State(records: [SampleRecord?](repeating: nil, count: count), threadsLeft: threads))
    }

    var finished: Int { state.withLock { $0.finished } }
    var records: [SampleRecord] { state.withLock { $0.records.map { $0! } } }

    func claim() -> Claim {
        state.withLock { s in
            if s.next >= count { return .allStarted }
            if s.next - s.finished >= concurrency { return .windowFull }
            s.next += 1
            return .sample(s.next - 1)
        }
    }

    /// Records an answer; `signal` wakes a sample thread waiting for room (answers from the loop).
    func finish(_ record: SampleRecord, signal: Bool) {
        let last = state.withLock { s -> Bool in
            s.records[record.sample] = record
            s.finished += 1
            return s.finished == count
        }
        // The last answer wakes every thread, whoever waits.
        for _ in 0..<(last ? threads : signal ? 1 : 0) { answered.signal() }
    }

    func report(_ progress: (Int) -> Void) {
        reported.withLock { last in
            let now = finished
            while last < now {
                last += 1
                progress(last)
            }
        }
    }

    /// A sample thread is done; true for the last one.
    func threadEnded() -> Bool { state.withLock { s in s.threadsLeft -= 1; return s.threadsLeft == 0 } }
}
