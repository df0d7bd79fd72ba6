import BranchyWire
import Foundation
import Testing
@testable import BranchyReport

@Suite struct RunReportTests {
    static let exitNames = ["device-exit", "edge-exit", "cloud-exit"]
    static let inputShape = [1, 28, 28]

    static func hop(_ link: String, _ reqFrame: UInt64, _ respFrame: UInt64) -> HopCost {
        HopCost(link: link, requestFrameBytes: reqFrame, responseFrameBytes: respFrame,
                requestTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: Int(reqFrame))),
                responseTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: Int(respFrame))))
    }

    static func record(_ sample: Int, label: Int, _ status: SampleRecord.Status = .answered, exit: Int, node: String,
                       predicted: Int, ms: Double, hops: [HopCost] = [], reason: String = "") -> SampleRecord {
        SampleRecord(sample: sample, label: label, status: status, reason: reason, exit: exit,
                     exitName: exit >= 0 ? exitNames[exit] : "-", node: node, predicted: predicted,
                     entropy: exit >= 0 ? 0.5 : .nan, latencySeconds: ms / 1000, hops: hops)
    }

    /// Two local exits (one right), one edge exit, two cloud exits (one right), one degraded edge
    /// answer (right) and one failure.
    static let records: [SampleRecord] = [
        record(0, label: 3, exit: 0, node: "device", predicted: 3, ms: 1),
        record(1, label: 1, exit: 0, node: "device", predicted: 2, ms: 2),
        record(2, label: 5, exit: 1, node: "edge", predicted: 5, ms: 3, hops: [hop("device->edge", 448, 60)]),
        record(3, label: 7, exit: 2, node: "cloud", predicted: 7, ms: 4,
               hops: [hop("device->edge", 448, 62), hop("edge->cloud", 568, 60)]),
        record(4, label: 0, exit: 2, node: "cloud", predicted: 1, ms: 5,
               hops: [hop("device->edge", 448, 62), hop("edge->cloud", 568, 60)]),
        record(5, label: 2, .degraded, exit: 1, node: "edge", predicted: 2, ms: 6,
               hops: [hop("device->edge", 448, 90)], reason: "upstream unavailable: not connected to cloud"),
        record(6, label: 4, .failed, exit: -1, node: "device", predicted: -1, ms: 7, reason: "upstream error: internalError"),
    ]

    static func report(_ records: [SampleRecord] = records) -> RunReport {
        RunReport(records: records, exitNames: exitNames, inputShape: inputShape, duration: 2, handshakeBytes: 1_234,
                  thresholds: [0.3, 0.4], codec: "int8", fingerprint: "abcd", topology: "t.yaml", device: "device")
    }

    @Test func statusCountsAddUpToTheSamples() {
        let r = Self.report()
        #expect(r.samples == 7)
        #expect(r.answered == 5)
        #expect(r.degraded == 1)
        #expect(r.failed == 1)
        #expect(r.answered + r.degraded + r.failed == r.samples)
        #expect(r.accuracy == 4.0 / 7.0)  // samples 0, 2, 3 and 5; a failure is never right
    }

    @Test func perExitCountsFractionsAndAccuracy() {
        let r = Self.report()
        #expect(r.exits.map(\.name) == Self.exitNames)
        #expect(r.exits.map(\.index) == [0, 1, 2])
        #expect(r.exits.map(\.node) == ["device", "edge", "cloud"])
        #expect(r.exits.map(\.count) == [2, 2, 2])
        let twoSevenths: Double = 2.0 / 7
        let fractions: [Double] = [twoSevenths, twoSevenths, twoSevenths], accuracies: [Double] = [0.5, 1, 0.5]
        #expect(r.exits.map(\.fraction) == fractions)
        #expect(r.exits.map(\.accuracy) == accuracies)
        #expect(r.exits.map(\.degraded) == [0, 1, 0])
        // The failed sample left at no exit.
        #expect(r.exits.map(\.count).reduce(0, +) == r.samples - r.failed)
    }

    @Test func bytesPerSampleIsTheMeanOfAllHopTLSBytesBothWays() {
        let r = Self.report()
        func wire(_ frame: Int) -> UInt64 { UInt64(TLSRecordOverhead.wireBytes(forFrame: frame)) }
        let edgeSamples: UInt64 = (wire(448) + wire(60)) + (wire(448) + wire(90))
        let cloudSample: UInt64 = wire(448) + wire(62) + wire(568) + wire(60)
        #expect(r.exits[0].bytesPerSample == 0)
        #expect(r.exits[0].totalBytes == 0)
        #expect(r.exits[1].totalBytes == edgeSamples)
        #expect(r.exits[1].bytesPerSample == Double(edgeSamples) / 2)
        #expect(r.exits[2].totalBytes == 2 * cloudSample)
        #expect(r.exits[2].bytesPerSample == Double(cloudSample))
        let exitTotal: UInt64 = r.exits.map(\.totalBytes).reduce(0, +)
        #expect(r.totalWireBytes == exitTotal)
        #expect(r.bytesPerSample == Double(r.totalWireBytes) / 7)
        let frames: UInt64 = 4 * 448 + (60 + 62 + 62 + 90) + 2 * (568 + 60)
        #expect(r.totalFrameBytes == frames)
    }

    @Test func linkTotalsAndMeans() throws {
        let r = Self.report()
        #expect(r.links.map(\.link) == ["device->edge", "edge->cloud"])
        let de = r.links[0], ec = r.links[1]
        let responseFrames: UInt64 = 60 + 62 + 62 + 90
        let responseWire: UInt64 = responseFrames + 4 * 22
        #expect(de.requests == 4)
        #expect(de.requestFrameBytes == 4 * 448)
        #expect(de.responseFrameBytes == responseFrames)
        #expect(de.requestTLSBytes == 4 * 470)
        #expect(de.responseTLSBytes == responseWire)
        #expect(de.meanRequestTLSBytes == 470)
        #expect(de.meanResponseTLSBytes == Double(responseWire) / 4)
        #expect(de.meanRequestFrameBytes == 448)
        #expect(ec.requests == 2)
        #expect(ec.requestFrameBytes == 2 * 568)
        #expect(ec.requestTLSBytes == 2 * 590)
        #expect(ec.responseTLSBytes == 2 * 82)
        #expect(ec.meanRequestTLSBytes == 590)
        #expect(ec.meanResponseTLSBytes == 82)
        let sum: UInt64 = de.requestTLSBytes + de.responseTLSBytes + ec.requestTLSBytes + ec.responseTLSBytes
        #expect(r.totalWireBytes == sum)
        // Per exit, only the links its samples crossed.
        #expect(r.exits[0].links.isEmpty)
        #expect(r.exits[1].links.map(\.link) == ["device->edge"])
        #expect(r.exits[1].links[0].requests == 2)
        #expect(r.exits[2].links.map(\.link) == ["device->edge", "edge->cloud"])
        #expect(r.exits[2].links.map(\.requests) == [2, 2])
    }

    @Test func rawOffloadIsOneRawExchangePerSample() {
        let r = Self.report()
        // The typical result frame is the mean first-hop response frame: (60 + 62 + 62 + 90) / 4 = 68.
        let perSample = RunReport.rawOffloadExchangeBytes(inputShape: Self.inputShape, resultFrameBytes: 68)
        // 784 raw int8 pixels in an infer frame (20 + 13 + 2 + 12 + 5 + 4 + 784 = 840 bytes) plus the result, one TLS record each.
        let expected = (840 + 22) + (68 + 22)
        #expect(perSample == expected)
        #expect(r.rawOffloadBytes == UInt64(r.samples * perSample))
        #expect(r.rawOffloadBytesPerSample == Double(perSample))
        #expect(r.savingsFactor == Double(r.rawOffloadBytes) / Double(r.totalWireBytes))
        #expect(r.tlsHandshakeBytes == 1_234)
    }

    @Test func latencyQuantiles() {
        let r = Self.report()
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-9 }
        // Nearest-rank quantiles over 1...7 ms: p50 is the 4th value, p99 the 7th.
        #expect(close(r.latencyMs.p50, 4))
        #expect(close(r.latencyMs.p99, 7))
        #expect(close(r.latencyMs.mean, 4))
        #expect(close(r.exits[2].latencyMs.p50, 4))
        #expect(close(r.exits[2].latencyMs.p99, 5))
        #expect(close(r.exits[0].latencyMs.mean, 1.5))
        #expect(r.samplesPerSecond == 3.5)
    }

    @Test func jsonCarriesTheDocumentedKeys() throws {
        let r = Self.report()
        let object = try #require(try JSONSerialization.jsonObject(with: try r.json()) as? [String: Any])
        for key in ["samples", "accuracy", "exits", "totalWireBytes", "rawOffloadBytes", "answered", "degraded", "failed",
                    "links", "bytesPerSample", "savingsFactor", "tlsHandshakeBytes"] {
            #expect(object[key] != nil, "missing key \(key)")
        }
        #expect(object["samples"] as? Int == 7)
        #expect(object["answered"] as? Int == 5)
        #expect(object["degraded"] as? Int == 1)
        #expect(object["failed"] as? Int == 1)
        #expect(object["totalWireBytes"] as? Int == Int(r.totalWireBytes))
        #expect(object["rawOffloadBytes"] as? Int == Int(r.rawOffloadBytes))
        let accuracy = try #require(object["accuracy"] as? Double)
        #expect(abs(accuracy - 4.0 / 7) < 1e-12)
        let exits = try #require(object["exits"] as? [[String: Any]])
        #expect(exits.count == 3)
        for (i, e) in exits.enumerated() {
            for key in ["name", "node", "count", "accuracy", "bytesPerSample"] { #expect(e[key] != nil, "exit \(i) lacks \(key)") }
            #expect(e["name"] as? String == Self.exitNames[i])
            #expect(e["count"] as? Int == 2)
        }
        #expect(exits[1]["node"] as? String == "edge")
        #expect(exits[2]["bytesPerSample"] as? Double == r.exits[2].bytesPerSample)
        let decoded = try JSONDecoder().decode(RunReport.self, from: try r.json())
        #expect(decoded.exits.map(\.count) == r.exits.map(\.count))
        #expect(decoded.totalWireBytes == r.totalWireBytes)
    }

    @Test func allLocalRunHasNoWireBytesAndEncodesInfiniteSavings() throws {
        let local = [Self.record(0, label: 1, exit: 0, node: "device", predicted: 1, ms: 1),
                     Self.record(1, label: 2, exit: 0, node: "device", predicted: 2, ms: 1)]
        let r = Self.report(local)
        #expect(r.totalWireBytes == 0)
        #expect(r.links.isEmpty)
        #expect(r.accuracy == 1)
        #expect(r.savingsFactor == .infinity)
        // With no result frame seen, the raw-offload estimate assumes a 60-byte result.
        let perSample = RunReport.rawOffloadExchangeBytes(inputShape: Self.inputShape, resultFrameBytes: 60)
        #expect(r.rawOffloadBytes == UInt64(2 * perSample))
        let object = try #require(try JSONSerialization.jsonObject(with: try r.json()) as? [String: Any])
        #expect(object["savingsFactor"] as? String == "inf")
    }

    @Test func emptyRunIsAllZeros() {
        let r = Self.report([])
        #expect(r.samples == 0)
        #expect(r.accuracy == 0)
        #expect(r.bytesPerSample == 0)
        #expect(r.rawOffloadBytes == 0)
        #expect(r.exits.allSatisfy { $0.count == 0 && $0.fraction == 0 && $0.bytesPerSample == 0 })
        #expect(r.latencyMs.p50 == 0)
    }

    @Test func tableNamesEveryExitAndLink() {
        let table = Self.report().table
        for s in Self.exitNames + ["device->edge", "edge->cloud", "7 samples: 5 answered, 1 degraded, 1 failed"] {
            #expect(table.contains(s), "table lacks '\(s)'")
        }
    }

    @Test(arguments: [(0, 22), (1, 23), (448, 470), (16_384, 16_406), (16_385, 16_385 + 44), (40_000, 40_000 + 66)])
    func tlsRecordOverhead(frame: Int, wire: Int) {
        #expect(TLSRecordOverhead.wireBytes(forFrame: frame) == wire)
    }
}
