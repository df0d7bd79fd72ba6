import BranchyLink
import BranchyModel
import BranchyTensor
import BranchyWire
import Dispatch
import NIOCore

/// The one way a sample goes upward, for the device and the servers alike: when none of this
/// node's exits was sure, its features go to the upstream pool with what is left of the deadline,
/// and what comes back is the upstream answer or, when upstream cannot answer, the node's own best
/// exit or a failure, by the node's `onUpstreamFailure` policy.
struct Forwarder: Sendable {
    /// What came of a forwarded sample.
    enum Outcome: Sendable {
        /// Upstream answered; the result's `hops` start with this node's link, its `passedEntropies`
        /// with this node's exits'.
        case answered(InferResult)
        /// Upstream could not answer and the policy degrades: this node's best exit stands.
        case degraded(exit: Int, output: ExitOutput, because: UpstreamFailure)
        /// Upstream could not answer, and the policy fails or this node has no exit to give.
        case failed(UpstreamFailure)
    }

    /// What a forwarded request asks of upstream besides the answer.
    struct Request: Sendable {
        /// Milliseconds upstream may take (0: the link's own deadline).
        var deadlineMillis: UInt32 = 0
        /// The answer should carry its exit's class probabilities.
        var wantsProbabilities = false
        /// Thresholds that replace upstream's own, by exit index.
        var thresholds: [UInt8: Float] = [:]
        /// The answer should carry each node's time and each link's round trip.
        var wantsTimings = false

        init(deadlineMillis: UInt32 = 0, wantsProbabilities: Bool = false, thresholds: [UInt8: Float] = [:], wantsTimings: Bool = false) {
            self.deadlineMillis = deadlineMillis; self.wantsProbabilities = wantsProbabilities
            self.thresholds = thresholds; self.wantsTimings = wantsTimings
        }
    }

    let link: UpstreamPool

    /// Sends `features` (one sample, batch dimension first) upward for `nextStage`, encoded with the
    /// codec of `context`; the outcome completes on the link's loop and never fails. `passed` are the
    /// entropies of the exits this node computed, put in front of the answer's `passedEntropies`.
    /// With timings asked for, the hop this node adds says the link's round trip as measured here (from
    /// handing the request to the pool to its answer: a failed attempt on another replica included) and
    /// the time upstream held the request (its answer's `serviceMicros`, which this node then clears
    /// for its own).
    func forward(sampleID: UInt64, features: Tensor, nextStage: Int, request asked: Request,
                 best: (exit: Int, output: ExitOutput)?, passed: [Float] = [], context: NodeContext) -> EventLoopFuture<Outcome> {
        let item = Tensor(shape: Array(features.shape.dropFirst()), data: features.data)
        var request = InferRequest(sampleID: sampleID, deadlineMillis: asked.deadlineMillis, stageIndex: UInt8(nextStage),
                                   features: context.encodeForUpstream(item))
        request.wantsProbabilities = asked.wantsProbabilities
        // Only the exits from `nextStage` on are still to come.
        request.exitThresholds = asked.thresholds.filter { Int($0.key) >= nextStage }
        request.wantsTimings = asked.wantsTimings
        let policy = context.config.onUpstreamFailure
        let sent = DispatchTime.now().uptimeNanoseconds
        return link.send(request).map { reply -> Outcome in
            var r = reply.result
            var hop = reply.cost
            if asked.wantsTimings {
                hop.roundTripMicros = InferenceServer.micros(since: sent)
                hop.upstreamMicros = r.serviceMicros
            }
            r.serviceMicros = 0
            r.hops = [hop] + r.hops
            // In front only of a complete list (every exit from `nextStage` on): a version 1 upstream
            // sends none, and the list must always end just before the answering exit.
            if !passed.isEmpty, r.passedEntropies.count == Int(r.exitIndex) - nextStage {
                r.passedEntropies = Array((passed + r.passedEntropies).suffix(InferResult.maxHops))
            }
            return .answered(r)
        }.recover { error -> Outcome in
            let failure = (error as? UpstreamFailure) ?? .unavailable("\(error)")
            if policy == .degrade, let best { return .degraded(exit: best.exit, output: best.output, because: failure) }
            return .failed(failure)
        }
    }

    /// The deadline a request forwarded upward carries, in ms (0: none): of what the caller gave,
    /// less what the request spent here since `arrival` (uptime ns), four fifths, leaving a fifth
    /// for the answer to travel back down; at least 1 ms.
    static func upstreamDeadline(callerMillis: UInt32, arrival: UInt64, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> UInt32 {
        guard callerMillis > 0 else { return 0 }
        let spent = (now &- arrival) / 1_000_000
        let left = UInt64(callerMillis) > spent ? UInt64(callerMillis) - spent : 0
        return UInt32(max(1, left / 5 * 4))
    }
}
