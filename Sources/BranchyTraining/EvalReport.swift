import BranchyModel
import Foundation

/// The outcome of early-exit classification under given thresholds.
public struct EvalReport: Codable, Sendable, Equatable {
    /// One exit's share of the samples.
    public struct Exit: Codable, Sendable, Equatable {
        public var name: String
        /// Entropy threshold (nil for the last exit, which always classifies).
        public var threshold: Float?
        public var count: Int
        public var fraction: Double
        /// Accuracy over the samples that left here (0 when none did).
        public var accuracy: Double

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(threshold, forKey: .threshold) // null for the last exit
            try c.encode(count, forKey: .count)
            try c.encode(fraction, forKey: .fraction)
            try c.encode(accuracy, forKey: .accuracy)
        }
    }

    public var samples: Int
    public var accuracy: Double
    /// Accuracy when every sample runs to the last exit.
    public var finalOnlyAccuracy: Double
    public var exits: [Exit]
    public var codec: String
    /// Exit index taken by each sample (not encoded).
    public var takenExit: [Int] = []
    public var predictions: [Int] = []

    enum CodingKeys: String, CodingKey { case samples, accuracy, finalOnlyAccuracy, exits, codec }

    /// Applies `policy` to a trace.
    public init(trace: ExitTrace, policy: ExitPolicy, codec: String) {
        let exits = trace.exitNames.count
        var count = [Int](repeating: 0, count: exits), right = count
        var taken = [Int](repeating: 0, count: trace.samples), preds = taken
        var finalRight = 0
        for s in 0..<trace.samples {
            var e = 0
            while !policy.exits(at: e, of: exits, entropy: trace.outputs[e][s].entropy) { e += 1 }
            taken[s] = e
            preds[s] = trace.outputs[e][s].predicted
            count[e] += 1
            if preds[s] == trace.labels[s] { right[e] += 1 }
            if trace.outputs[exits - 1][s].predicted == trace.labels[s] { finalRight += 1 }
        }
        let n = Double(max(1, trace.samples))
        self.samples = trace.samples
        self.accuracy = Double(right.reduce(0, +)) / n
        self.finalOnlyAccuracy = Double(finalRight) / n
        self.exits = (0..<exits).map { e in
            Exit(name: trace.exitNames[e], threshold: e < exits - 1 ? policy.thresholds[e] : nil, count: count[e],
                 fraction: Double(count[e]) / n, accuracy: count[e] > 0 ? Double(right[e]) / Double(count[e]) : 0)
        }
        self.codec = codec
        self.takenExit = taken
        self.predictions = preds
    }

    /// A readable table.
    public var table: String {
        var out = pad("exit", 10) + " " + pad("threshold", 10, right: true) + " " + pad("samples", 8, right: true) + " " + pad("fraction", 9, right: true) + " " + pad("accuracy", 9, right: true) + "\n"
        for e in exits {
            let t = e.threshold.map { String(format: "%.4f", $0) } ?? "-"
            out += pad(e.name, 10) + " " + pad(t, 10, right: true) + " " + pad("\(e.count)", 8, right: true) + " "
                + pad(String(format: "%.2f%%", 100 * e.fraction), 9, right: true) + " " + pad(String(format: "%.2f%%", 100 * e.accuracy), 9, right: true) + "\n"
        }
        out += String(format: "overall accuracy %.2f%% over %d samples", 100 * accuracy, samples) + " (codec \(codec))\n"
        out += String(format: "final exit alone %.2f%%\n", 100 * finalOnlyAccuracy)
        return out
    }

    private func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, w - s.count))
        return right ? fill + s : s + fill
    }
}
