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
}
