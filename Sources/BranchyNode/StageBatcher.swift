import BranchyBatching
import BranchyTensor
import BranchyModel
import Dispatch
import BranchyWire
import NIOCore
import NIOPosix

/// A request accepted by a connection, waiting for the stage.
struct BatchItem {
    let connection: ServerConnectionHandler
    let requestID: UInt64
    let request: InferRequest
    /// When the request arrived (uptime nanoseconds): its deadline budget runs from here.
    let arrival: UInt64
}

/// The server's dynamic batcher: gathers the requests of every connection into batches by the
/// rules of `BatchQueue` and runs each batch through the node's stages at once.
///
/// Lives on the server's event loop, where every connection, the upstream link and this batcher
/// share one thread: a request read from a socket is batched, computed, forwarded upstream and
/// answered without a thread hop. A batch expected to take longer than `inlineLimitNanos` runs
/// on the thread pool instead, so that the loop keeps moving bytes meanwhile.
final class StageBatcher {
    /// Batches expected to take longer than this run on the thread pool. A full batch of the shipped
    /// model's edge or cloud stage takes 2–4 ms: on a loaded machine, a hop to another thread and
    /// back costs more than the loop gains by staying free, so batches that short run inline.
    static let inlineLimitNanos: Double = 5_000_000

    private unowned let server: InferenceServer
    private let loop: any EventLoop
    private var queue: BatchQueue<BatchItem>
    /// Sizes of the batches run so far.
    private(set) var histogram = BatchHistogram()
    /// Running mean of the stage's time per sample, from the batches run so far.
    private var nanosPerSample: Double = 0

    init(server: InferenceServer, loop: any EventLoop) {
        self.server = server
        self.loop = loop
        let config = server.context.config
        queue = BatchQueue(maxBatch: config.maxBatch, maxDelayNanos: Int64(config.maxBatchDelayMicros) * 1000)
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Takes a request whose stage and shape were checked.
    func submit(_ item: BatchItem) {
        handle(queue.arrive(item, now: Int64(item.arrival)))
    }

    private func handle(_ first: BatchQueue<BatchItem>.Step) {
        var step = first
        while true {
            switch step {
            case .none:
                return
            case .checkAtEndOfBurst:
                // Tasks run after the loop has handled every socket that was ready: by then, every
                // request that arrived together has joined.
                loop.assumeIsolated().execute { self.handle(self.queue.burstEnded(now: Int64(Self.now()))) }
                return
            case .wake(let due):
                loop.assumeIsolated().scheduleTask(deadline: NIODeadline.uptimeNanoseconds(UInt64(due))) {
                    self.handle(self.queue.timerFired(due: due, now: Int64(Self.now())))
                }
                return
            case .run(let batch):
                // Requests of connections that closed meanwhile are abandoned, not computed.
                let live = batch.filter { $0.connection.isOpen }
                if live.count < batch.count { server.metrics?.inFlight.decrement(by: Double(batch.count - live.count)) }
                if live.isEmpty {
                    step = queue.batchFinished(now: Int64(Self.now()))
                    continue
                }
                let runner = server.runner
                let requests = live.map(\.request)
                if nanosPerSample * Double(live.count) <= Self.inlineLimitNanos {
                    do {
                        let (outcomes, nanos) = try Self.compute(runner, requests)
                        learn(nanos, live.count)
                        deliver(live, outcomes)
                    } catch {
                        fail(live, error)
                    }
                    step = queue.batchFinished(now: Int64(Self.now()))
                    continue
                }
                server.pool.runIfActive(eventLoop: loop) { try Self.compute(runner, requests) }
                    .assumeIsolated().whenComplete { result in
                        switch result {
                        case .success(let (outcomes, nanos)):
                            self.learn(nanos, live.count)
                            self.deliver(live, outcomes)
                        case .failure(let error):
                            self.fail(live, error)
                        }
                        self.handle(self.queue.batchFinished(now: Int64(Self.now())))
                    }
                return
            }
        }
    }

    private static func compute(_ runner: StageRunner, _ requests: [InferRequest]) throws -> ([StageRunner.Outcome], UInt64) {
        let start = now()
        let wanted = requests.map(\.wantsProbabilities)
        let outcomes = runner.run(batch: try requests.map { try $0.tensor() }, probabilities: wanted.contains(true) ? wanted : [],
                                  policies: requests.map { $0.policy(over: runner.policy) })
        return (outcomes, now() - start)
    }

    /// Answers every request of a batch that could not be computed with an error.
    private func fail(_ items: [BatchItem], _ error: any Error) {
        for item in items {
            item.connection.respond(item.requestID, .error(ErrorFrame(code: .internalError, message: "\(error)")), arrival: item.arrival)
        }
    }

    private func learn(_ nanos: UInt64, _ samples: Int) {
        histogram.record(size: samples, nanos: nanos)
        server.metrics?.batchSize.record(Double(samples))
        let perSample = Double(nanos) / Double(max(1, samples))
        nanosPerSample = nanosPerSample == 0 ? perSample : 0.8 * nanosPerSample + 0.2 * perSample
    }

    private func deliver(_ items: [BatchItem], _ outcomes: [StageRunner.Outcome]) {
        for (item, outcome) in zip(items, outcomes) {
            switch outcome {
            case .exited(let exit, let out, let passed):
                var r = server.result(exit: exit, out)
                r.passedEntropies = passed
                if item.request.wantsTimings { r.serviceMicros = InferenceServer.micros(since: item.arrival) }
                item.connection.respond(item.requestID, .result(r), arrival: item.arrival)
            case .forward(let features, let next, let best, let passed):
                server.forward(item.request, arrival: item.arrival, features: features, nextStage: next, best: best, passed: passed, on: loop)
                    .assumeIsolated().whenComplete { result in
                        switch result {
                        case .success(let message): item.connection.respond(item.requestID, message, arrival: item.arrival)
                        case .failure(let error):
                            item.connection.respond(item.requestID, .error(ErrorFrame(code: .internalError, message: "\(error)")),
                                                    arrival: item.arrival)
                        }
                    }
            }
        }
    }
}
