/// How a cluster answered one sample: the exit that was sure of it, where that exit ran, its class
/// and probabilities, and what the answer cost.
public struct Classification: Sendable, Equatable {
    /// Whether the answer is the one the topology intended.
    public enum Status: String, Sendable {
        /// The first exit sure of the sample answered.
        case answered
        /// A lower exit answered instead (upstream failed, or the call asked for the device alone); see `reason`.
        case degraded
    }

    /// The answering exit, counted from 0 in the model's order.
    public var exit: Int
    /// The answering exit's name (e.g. `device-exit`).
    public var exitName: String
    /// The role of the node that answered: `device`, `edge` or `cloud`.
    public var tier: String
    /// The name of the node that answered.
    public var node: String
    /// The most probable class.
    public var predictedClass: Int
    /// Every class's probability at the answering exit, when asked for.
    public var probabilities: [Float]?
    /// The entropy of the answering exit's softmax (natural log).
    public var entropy: Float
    public var status: Status
    /// Why a degraded answer is degraded; empty otherwise.
    public var reason: String
    /// Bytes this sample's requests took upward, on every link it crossed (frames, before TLS).
    public var upwardBytes: Int
    /// From the call to the answer.
    public var latency: Duration
    /// Of `latency`, the time on the device: waiting for its batch and computing its stages.
    public var deviceTime: Duration
    /// The links the sample crossed upward, nearest first, with their times.
    public var hops: [Hop] = []

    /// One link a sample crossed upward, and what it took.
    public struct Hop: Sendable, Equatable {
        /// The link, e.g. `device->edge`.
        public var link: String
        /// From handing the request to the link to its answer, as the sending node measured it; nil
        /// when that node did not say (behind a version 1 link).
        public var roundTrip: Duration?
        /// Of `roundTrip`, the time the node at the link's far end held the request (its queue,
        /// compute and its own upstream wait); nil when that node did not say (a version 1 link).
        public var upstreamTime: Duration?
        /// The request frame's bytes on this link (before TLS).
        public var requestBytes: Int
        /// The response frame's bytes on this link (before TLS).
        public var responseBytes: Int
    }
}
