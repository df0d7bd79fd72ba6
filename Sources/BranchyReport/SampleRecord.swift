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
    /// The entropies at the exits the sample passed before the one that answered, by exit index:
    /// the device's own and those the upstream nodes reported (protocol v2); nil for an exit no
    /// one reported (behind a version 1 link).
    public var passedEntropies: [Float?] = []
    /// The answering exit's probability for every class, when they were asked for (the front door).
    public var probabilities: [Float]?
    /// Nanoseconds the device spent computing its own stages for this sample (0 when it ran none).
    public var computeNanos: UInt64 = 0

    /// The entropy at each exit from the first to the one that answered, as far as the device
    /// knows them; nil for the others.
    public var entropies: [Float?] {
        guard exit >= 0 else { return [] }
        var e = [Float?](repeating: nil, count: exit + 1)
        for (i, h) in passedEntropies.prefix(exit).enumerated() { e[i] = h }
        e[exit] = entropy
        return e
    }

    /// The line `--predictions` writes for this sample (JSON): `sample`, `exit` (counted from 0;
    /// −1 when failed), `class`, `status`, `entropies` (natural log, one per exit reached; null
    /// where unknown).
    public var predictionLine: String {
        let list = entropies.map { $0.map { $0.isFinite ? "\($0)" : "null" } ?? "null" }.joined(separator: ",")
        return "{\"sample\":\(sample),\"exit\":\(exit),\"class\":\(predicted),\"status\":\"\(status.rawValue)\",\"entropies\":[\(list)]}\n"
    }

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
