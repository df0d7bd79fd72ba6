import BranchyWire

/// What the device learned about one sample: where it left, what it was called, what it cost.
public struct SampleRecord: Sendable {
    public enum Status: String, Sendable, Codable {
        /// Answered by the exit the policy chose.
        case answered
        /// Upstream could not answer; a lower exit's answer was given instead.
        case degraded
        /// No answer could be given.
        case failed
    }

    public var sample: Int
    public var label: Int
    public var status: Status
    public var reason: String
    /// Exit index that answered (-1 when failed).
    public var exit: Int
    public var exitName: String
    /// Node that answered.
    public var node: String
    public var predicted: Int
    public var entropy: Float
    public var latencySeconds: Double
    /// Per-link costs, nearest link first (empty when the device answered alone).
    public var hops: [HopCost]
    /// When the answer arrived, in seconds since the run began.
    public var finishedSeconds: Double = 0

    public var correct: Bool { status != .failed && predicted == label }

    public init(sample: Int, label: Int, status: Status, reason: String, exit: Int, exitName: String, node: String, predicted: Int,
                entropy: Float, latencySeconds: Double, hops: [HopCost], finishedSeconds: Double = 0) {
        self.sample = sample
        self.label = label
        self.status = status
        self.reason = reason
        self.exit = exit
        self.exitName = exitName
        self.node = node
        self.predicted = predicted
        self.entropy = entropy
        self.latencySeconds = latencySeconds
        self.hops = hops
        self.finishedSeconds = finishedSeconds
    }
}
