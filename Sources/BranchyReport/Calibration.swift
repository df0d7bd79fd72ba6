import Foundation

/// The threshold calibration of a model: the trade-off points screened between accuracy and
/// bytes on the wire, and the one picked for the goal. `branchy calibrate` writes it as
/// `calibration.json` in the model directory; the device's HTML report draws it as the frontier.
///
///     {"goal": "max-accuracy-drop 0.5",
///      "points": [{"thresholds": [0.6, 0.5], "accuracy": 0.905, "bytesPerSample": 41.2, "deviceFraction": 0.86}],
///      "chosen": 0}
public struct Calibration: Codable, Sendable, Equatable {
    /// One screened threshold combination.
    public struct Point: Codable, Sendable, Equatable {
        /// An entropy threshold for every exit but the last, in model order.
        public var thresholds: [Double]
        /// Fraction of samples classified right, 0...1.
        public var accuracy: Double
        /// Mean TLS bytes on all links, both directions, per sample.
        public var bytesPerSample: Double
        /// Fraction of samples that leave at the device's own exits, 0...1.
        public var deviceFraction: Double?
        /// Fraction of samples that leave at each exit, in model order (written by `branchy calibrate`).
        public var fractions: [Double]?
        /// Mean and 99th-percentile latency per sample under the calibration's link model, in ms.
        public var meanLatencyMs: Double?
        public var p99LatencyMs: Double?

        public init(thresholds: [Double], accuracy: Double, bytesPerSample: Double, deviceFraction: Double? = nil,
                    fractions: [Double]? = nil, meanLatencyMs: Double? = nil, p99LatencyMs: Double? = nil) {
            self.thresholds = thresholds
            self.accuracy = accuracy
            self.bytesPerSample = bytesPerSample
            self.deviceFraction = deviceFraction
            self.fractions = fractions
            self.meanLatencyMs = meanLatencyMs
            self.p99LatencyMs = p99LatencyMs
        }
    }

    /// What the calibration optimised for, in words (`max-accuracy-drop 0.5`).
    public var goal: String
    public var points: [Point]
    /// Index into `points` of the combination picked, if any.
    public var chosen: Int?
    /// Held-out samples the points were measured on.
    public var samples: Int?
    /// Accuracy of the last exit alone on those samples, 0...1.
    public var finalOnlyAccuracy: Double?
    /// The codec of each link, device side first (nil: float32).
    public var links: [String?]?
    /// The thresholds of the chosen point, repeated for readers that look for them by name.
    public var chosenThresholds: [Double]?

    public init(goal: String, points: [Point], chosen: Int?, samples: Int? = nil, finalOnlyAccuracy: Double? = nil,
                links: [String?]? = nil, chosenThresholds: [Double]? = nil) {
        self.goal = goal
        self.points = points
        self.chosen = chosen
        self.samples = samples
        self.finalOnlyAccuracy = finalOnlyAccuracy
        self.links = links
        self.chosenThresholds = chosenThresholds
    }

    /// The picked point, when `chosen` indexes one.
    public var chosenPoint: Point? {
        guard let chosen, points.indices.contains(chosen) else { return nil }
        return points[chosen]
    }

    /// The file name `branchy calibrate` writes in the model directory.
    public static let fileName = "calibration.json"

    /// Reads and checks a calibration file; errors name the file and what is wrong with it.
    public static func load(contentsOf url: URL) throws -> Calibration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ReportError("\(url.path): cannot read the calibration file: \(error.localizedDescription)")
        }
        let calibration: Calibration
        do { calibration = try JSONDecoder().decode(Calibration.self, from: data) } catch {
            throw ReportError("\(url.path): not a calibration file (expected {\"goal\", \"points\", \"chosen\"}): \(error)")
        }
        try calibration.validate(source: url.path)
        return calibration
    }

    /// Accuracies and fractions in 0...1, finite non-negative bytes, and a `chosen` that indexes a point.
    public func validate(source: String) throws {
        for (i, p) in points.enumerated() {
            guard p.accuracy.isFinite, (0...1).contains(p.accuracy) else {
                throw ReportError("\(source): points[\(i)].accuracy is \(p.accuracy), expected a fraction from 0 to 1")
            }
            guard p.bytesPerSample.isFinite, p.bytesPerSample >= 0 else {
                throw ReportError("\(source): points[\(i)].bytesPerSample is \(p.bytesPerSample), expected a non-negative number")
            }
            if let f = p.deviceFraction, !(f.isFinite && (0...1).contains(f)) {
                throw ReportError("\(source): points[\(i)].deviceFraction is \(f), expected a fraction from 0 to 1")
            }
        }
        if let chosen, !points.indices.contains(chosen) {
            throw ReportError("\(source): chosen is \(chosen) but there are \(points.count) points")
        }
    }
}
