import BranchyWire
import Foundation

/// The device's per-exit communication report: samples, accuracy, bytes on every link and
/// latency for each exit, totals, and the cost of sending every raw input to the cloud instead.
public struct RunReport: Codable, Sendable {
    /// Mean and total bytes of one link, in both directions, as frames and as TLS records on the wire.
    public struct LinkBytes: Codable, Sendable {
        public var link: String
        /// Samples whose request crossed this link.
        public var requests: Int
        public var requestFrameBytes: UInt64
        public var responseFrameBytes: UInt64
        public var requestTLSBytes: UInt64
        public var responseTLSBytes: UInt64
        /// Means over the samples that crossed the link.
        public var meanRequestTLSBytes: Double
        public var meanResponseTLSBytes: Double
        public var meanRequestFrameBytes: Double
    }

    /// Median, 99th percentile and mean, in milliseconds.
    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double
        public var p99: Double
        public var mean: Double
    }

    public struct Exit: Codable, Sendable {
        public var name: String
        public var node: String
        public var index: Int
        public var count: Int
        public var fraction: Double
        public var accuracy: Double
        public var degraded: Int
        /// Mean TLS bytes on all links, both directions, per sample that left here.
        public var bytesPerSample: Double
        public var totalBytes: UInt64
        public var links: [LinkBytes]
        public var latencyMs: Latency
    }

    public var samples: Int
    public var answered: Int
    public var degraded: Int
    public var failed: Int
    public var accuracy: Double
    public var exits: [Exit]
    public var links: [LinkBytes]
    /// TLS bytes of all requests and answers on all links (handshakes excluded).
    public var totalWireBytes: UInt64
    /// The same as frame bytes (before TLS).
    public var totalFrameBytes: UInt64
    /// TLS handshake, hello and acknowledgement bytes on the device's link.
    public var tlsHandshakeBytes: UInt64
    /// Bytes the device's link counted below TLS over the whole run, handshakes and reconnects included:
    /// a cross-check of the per-request figures of the device's first link.
    public var measuredDeviceLinkBytesSent: UInt64 = 0
    public var measuredDeviceLinkBytesReceived: UInt64 = 0
    /// Connections the device's link made (1 + reconnects).
    public var deviceLinkConnections: Int = 0
    /// Mean TLS bytes per sample over all samples.
    public var bytesPerSample: Double
    /// What sending each raw 8-bit input to the cloud, and its answer back, would put on the wire.
    public var rawOffloadBytes: UInt64
    public var rawOffloadBytesPerSample: Double
    /// rawOffloadBytes / totalWireBytes.
    public var savingsFactor: Double
    public var latencyMs: Latency
    public var durationSeconds: Double
    public var samplesPerSecond: Double
    /// Every link's totals over the run, counted below TLS, handshakes included: the device's own
    /// link, and each upstream link as its server reported it (`statsRequest`) at the end of the run.
    public var linkTotals: [LinkTotals] = []
    /// TLS handshakes (with hello and acknowledgement) of every link in `linkTotals`.
    public var handshakeBytesAllLinks: UInt64 = 0
    /// `totalWireBytes` plus every link's handshakes, per sample.
    public var bytesPerSampleWithHandshakes: Double = 0
    /// What the figures count.
    public var counted = "per sample: every request and result frame on every link it crossed, both directions, "
        + "each in its TLS record (header, content type and tag); handshakes are counted apart (handshakeBytesAllLinks)"
    /// Answers per second of the run, second by second (from the answers' arrival times): a
    /// fault or a reload in the middle of a run shows here.
    public var throughputTimeline: [Int] = []
    /// A measured baseline run (e.g. topology/cloud-only.yaml) to compare with, when given.
    public var baseline: Baseline?
    /// Each link's round trip, the far node's hold and the link's own cost, when the run asked
    /// for timings (nil otherwise).
    public var hopTimings: [HopTiming]?
    /// Milliseconds the device computed its stages per sample (from when it took the sample to
    /// when its own exits had decided), over every sample.
    public var deviceComputeMs: Latency?

    /// The figures of another run of the same samples, read from its report.
    public struct Baseline: Codable, Sendable {
        public var topology: String
        public var bytesPerSample: Double
        public var bytesPerSampleWithHandshakes: Double
        public var latencyMs: Latency
        /// baseline bytes / this run's bytes.
        public var savings: Double
        public var savingsWithHandshakes: Double
        /// baseline mean latency / this run's.
        public var meanLatencyRatio: Double
        public var p99LatencyRatio: Double
    }

    /// Adds every link's totals (the device's own link first) and the handshake-inclusive figures.
    public mutating func setLinkTotals(_ totals: [LinkTotals]) {
        linkTotals = totals
        handshakeBytesAllLinks = totals.reduce(0) { $0.adding(saturating: $1.handshakeBytes) }
        bytesPerSampleWithHandshakes = samples == 0 ? 0 : Double(totalWireBytes.adding(saturating: handshakeBytesAllLinks)) / Double(samples)
    }

    /// Compares this run with the report of a baseline run.
    public mutating func compare(with other: RunReport) {
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : .infinity }
        baseline = Baseline(topology: other.topology, bytesPerSample: other.bytesPerSample,
                            bytesPerSampleWithHandshakes: other.bytesPerSampleWithHandshakes, latencyMs: other.latencyMs,
                            savings: ratio(other.bytesPerSample, bytesPerSample),
                            savingsWithHandshakes: ratio(other.bytesPerSampleWithHandshakes, bytesPerSampleWithHandshakes),
                            meanLatencyRatio: ratio(other.latencyMs.mean, latencyMs.mean), p99LatencyRatio: ratio(other.latencyMs.p99, latencyMs.p99))
    }

    /// Reads a report written by `json()`.
    public static func load(_ url: URL) throws -> RunReport {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try d.decode(RunReport.self, from: Data(contentsOf: url))
    }

    public var thresholds: [Float]
    public var codec: String
    public var fingerprint: String
    public var topology: String
    public var device: String

    /// Bytes of one raw-offload exchange: an infer frame carrying the input as 8-bit pixels, a typical
    /// result frame back, each in one TLS record.
    public static func rawOffloadExchangeBytes(inputShape: [Int], resultFrameBytes: Int) -> Int {
        let pixels = inputShape.reduce(1, *)
        let request = InferRequest(sampleID: 0, stageIndex: 0,
                                   features: .init(kind: .int8, shape: inputShape, quantization: .init(scale: 1.0 / 255, zeroPoint: -128),
                                                   bytes: [UInt8](repeating: 0, count: pixels)))
        let frame = Frame(requestID: 1, message: .infer(request)).encodedSize
        return TLSRecordOverhead.wireBytes(forFrame: frame) + TLSRecordOverhead.wireBytes(forFrame: resultFrameBytes)
    }

    public init(records: [SampleRecord], exitNames: [String], inputShape: [Int], duration: Double, handshakeBytes: UInt64,
                thresholds: [Float], codec: String, fingerprint: String, topology: String, device: String) {
        let n = records.count
        samples = n
        answered = records.filter { $0.status == .answered }.count
        degraded = records.filter { $0.status == .degraded }.count
        failed = records.filter { $0.status == .failed }.count
        accuracy = n == 0 ? 0 : Double(records.filter(\.correct).count) / Double(n)
        func linksOf(_ rs: [SampleRecord]) -> [LinkBytes] {
            var order: [String] = []
            var acc: [String: LinkBytes] = [:]
            for r in rs { for h in r.hops {
                if acc[h.link] == nil {
                    order.append(h.link)
                    acc[h.link] = LinkBytes(link: h.link, requests: 0, requestFrameBytes: 0, responseFrameBytes: 0, requestTLSBytes: 0,
                                            responseTLSBytes: 0, meanRequestTLSBytes: 0, meanResponseTLSBytes: 0, meanRequestFrameBytes: 0)
                }
                acc[h.link]!.requests += 1
                acc[h.link]!.requestFrameBytes.add(saturating: h.requestFrameBytes)
                acc[h.link]!.responseFrameBytes.add(saturating: h.responseFrameBytes)
                acc[h.link]!.requestTLSBytes.add(saturating: h.requestTLSBytes)
                acc[h.link]!.responseTLSBytes.add(saturating: h.responseTLSBytes)
            } }
            return order.map { k in
                var l = acc[k]!
                let c = Double(max(1, l.requests))
                l.meanRequestTLSBytes = Double(l.requestTLSBytes) / c
                l.meanResponseTLSBytes = Double(l.responseTLSBytes) / c
                l.meanRequestFrameBytes = Double(l.requestFrameBytes) / c
                return l
            }
        }
        func wire(_ r: SampleRecord) -> UInt64 { r.hops.reduce(0) { $0.adding(saturating: $1.requestTLSBytes).adding(saturating: $1.responseTLSBytes) } }
        func frames(_ r: SampleRecord) -> UInt64 { r.hops.reduce(0) { $0.adding(saturating: $1.requestFrameBytes).adding(saturating: $1.responseFrameBytes) } }
        func latency(_ rs: [SampleRecord]) -> Latency { Latency(rs.map { $0.latencySeconds * 1000 }) }
        exits = exitNames.enumerated().map { i, name in
            let rs = records.filter { $0.exit == i }
            let total = rs.reduce(UInt64(0)) { $0.adding(saturating: wire($1)) }
            let nodes = Array(Set(rs.map(\.node))).sorted()
            return Exit(name: name, node: nodes.joined(separator: ","), index: i, count: rs.count, fraction: n == 0 ? 0 : Double(rs.count) / Double(n),
                        accuracy: rs.isEmpty ? 0 : Double(rs.filter(\.correct).count) / Double(rs.count),
                        degraded: rs.filter { $0.status == .degraded }.count,
                        bytesPerSample: rs.isEmpty ? 0 : Double(total) / Double(rs.count), totalBytes: total,
                        links: linksOf(rs), latencyMs: latency(rs))
        }
        links = linksOf(records)
        totalWireBytes = records.reduce(0) { $0.adding(saturating: wire($1)) }
        totalFrameBytes = records.reduce(0) { $0.adding(saturating: frames($1)) }
        tlsHandshakeBytes = handshakeBytes
        bytesPerSample = n == 0 ? 0 : Double(totalWireBytes) / Double(n)
        let resultFrames = records.compactMap { $0.hops.first?.responseFrameBytes }
        let typicalResult = resultFrames.isEmpty ? 60 : Int(min(resultFrames.reduce(0) { $0.adding(saturating: $1) } / UInt64(resultFrames.count), UInt64(UInt32.max)))
        let perRaw = RunReport.rawOffloadExchangeBytes(inputShape: inputShape, resultFrameBytes: typicalResult)
        rawOffloadBytes = UInt64(perRaw * n)
        rawOffloadBytesPerSample = Double(perRaw)
        savingsFactor = totalWireBytes == 0 ? .infinity : Double(rawOffloadBytes) / Double(totalWireBytes)
        latencyMs = latency(records)
        durationSeconds = duration
        samplesPerSecond = duration > 0 ? Double(n) / duration : 0
        let timings = HopTiming.of(records)
        hopTimings = timings.isEmpty ? nil : timings
        if n > 0 { deviceComputeMs = Latency(records.map { Double($0.computeNanos) / 1e6 }) }
        if let last = records.map(\.finishedSeconds).max(), last > 0 {
            var timeline = [Int](repeating: 0, count: Int(last) + 1)
            for r in records { timeline[min(timeline.count - 1, max(0, Int(r.finishedSeconds)))] += 1 }
            throughputTimeline = timeline
        }
        self.thresholds = thresholds
        self.codec = codec
        self.fingerprint = fingerprint
        self.topology = topology
        self.device = device
    }

    /// JSON with sorted keys.
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    /// The per-exit table printed by the device.
    public var table: String {
        func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        func f(_ v: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", v) }
        var out = "exit          node       samples  fraction  accuracy  bytes/sample   p50 ms   p99 ms  degraded\n"
        for e in exits {
            out += e.name.padding(toLength: 12, withPad: " ", startingAt: 0) + "  " + e.node.padding(toLength: 9, withPad: " ", startingAt: 0)
                + pad("\(e.count)", 9) + pad(f(100 * e.fraction) + "%", 10) + pad(f(100 * e.accuracy, 2) + "%", 10)
                + pad(f(e.bytesPerSample), 14) + pad(f(e.latencyMs.p50, 3), 9) + pad(f(e.latencyMs.p99, 3), 9) + pad("\(e.degraded)", 10) + "\n"
        }
        out += "\nlink              requests  mean up B  mean down B  total up B  total down B   (TLS bytes on the wire)\n"
        for l in links {
            out += l.link.padding(toLength: 16, withPad: " ", startingAt: 0) + pad("\(l.requests)", 10) + pad(f(l.meanRequestTLSBytes), 11)
                + pad(f(l.meanResponseTLSBytes), 13) + pad("\(l.requestTLSBytes)", 12) + pad("\(l.responseTLSBytes)", 14) + "\n"
        }
        out += "\n\(samples) samples: \(answered) answered, \(degraded) degraded, \(failed) failed; accuracy \(f(100 * accuracy, 2))%\n"
        out += "wire bytes \(totalWireBytes) (\(f(bytesPerSample)) per sample; frames \(totalFrameBytes)), TLS handshakes \(tlsHandshakeBytes)\n"
        if deviceLinkConnections > 0 {
            out += "device link measured below TLS: sent \(measuredDeviceLinkBytesSent), received \(measuredDeviceLinkBytesReceived) bytes over \(deviceLinkConnections) connection(s)\n"
        }
        if !linkTotals.isEmpty {
            out += "every link, handshakes included: " + linkTotals.map { "\($0.link) \($0.handshakeBytes) B of handshakes over \($0.connections) connection(s)" }
                .joined(separator: "; ") + "; \(f(bytesPerSampleWithHandshakes)) bytes per sample with them\n"
        }
        if let b = baseline {
            out += "measured baseline \(b.topology): \(f(b.bytesPerSample)) bytes per sample (\(f(b.bytesPerSampleWithHandshakes)) with handshakes): "
                + "\(f(b.savings, 2))x more (\(f(b.savingsWithHandshakes, 2))x with handshakes); latency mean \(f(b.latencyMs.mean, 3)) ms, "
                + "p99 \(f(b.latencyMs.p99, 3)) ms: \(f(b.meanLatencyRatio, 2))x and \(f(b.p99LatencyRatio, 2))x this run's\n"
        } else {
            out += "raw offload estimate (computed, not measured; measure it with topology/cloud-only.yaml and --baseline): "
                + "\(f(rawOffloadBytesPerSample)) bytes per sample, \(f(savingsFactor, 2))x more\n"
        }
        out += "latency p50 \(f(latencyMs.p50, 3)) ms, p99 \(f(latencyMs.p99, 3)) ms; \(f(samplesPerSecond, 0)) samples/s over \(f(durationSeconds, 2)) s\n"
        if let c = deviceComputeMs {
            out += "device compute per sample p50 \(f(c.p50, 3)) ms, p99 \(f(c.p99, 3)) ms\n"
        }
        for h in hopTimings ?? [] {
            out += "\(h.link) timings over \(h.requests) requests: round trip p50 \(f(h.roundTripMs.p50, 3)) ms (p99 \(f(h.roundTripMs.p99, 3))), "
                + "held upstream p50 \(f(h.heldMs.p50, 3)) ms, the link itself p50 \(f(h.linkMs.p50, 3)) ms (p99 \(f(h.linkMs.p99, 3)))\n"
        }
        if throughputTimeline.count > 1 {
            out += "answers per second, second by second: " + throughputTimeline.map(String.init).joined(separator: " ") + "\n"
        }
        return out
    }
}

extension RunReport.Latency {
    /// The figures of `values` (empty: all zero); the p-quantile is the ⌈p·n⌉-th smallest.
    public init(_ values: [Double]) {
        let v = values.sorted()
        guard !v.isEmpty else { self.init(p50: 0, p99: 0, mean: 0); return }
        func q(_ p: Double) -> Double { v[min(v.count - 1, max(0, Int((p * Double(v.count)).rounded(.up)) - 1))] }
        self.init(p50: q(0.5), p99: q(0.99), mean: v.reduce(0, +) / Double(v.count))
    }
}

extension UInt64 {
    /// `self + other`, or `UInt64.max` where the sum would overflow: byte counts reported by peers
    /// are bounded where they are decoded, and a report's sums saturate rather than trap.
    public func adding(saturating other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// Adds `other`, saturating at `UInt64.max`.
    public mutating func add(saturating other: UInt64) { self = adding(saturating: other) }
}
