import Foundation
import Testing
import BranchyReport
@testable import branchy

@Suite struct ClusterBenchTests {
    /// The bench reads the device's JSON report with `RunReport.load`: the fields it uses survive the file.
    @Test func readsTheDevicesReport() throws {
        func record(_ i: Int, exit: Int, name: String, seconds: Double) -> SampleRecord {
            SampleRecord(sample: i, label: 1, status: .answered, reason: "", exit: exit, exitName: name, node: name, predicted: 1,
                         entropy: 0.1, latencySeconds: seconds, hops: [])
        }
        let records = [record(0, exit: 0, name: "device-exit", seconds: 0.001), record(1, exit: 0, name: "device-exit", seconds: 0.001),
                       record(2, exit: 1, name: "edge-exit", seconds: 0.003)]
        let report = RunReport(records: records, exitNames: ["device-exit", "edge-exit"], inputShape: [1, 28, 28], duration: 0.5,
                               handshakeBytes: 0, thresholds: [0.5], codec: "float32", fingerprint: "f", topology: "t", device: "device")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-bench-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try report.json().write(to: url)
        let r = try RunReport.load(url)
        #expect(r.samples == 3 && r.answered == 3 && r.failed == 0)
        #expect(r.samplesPerSecond == report.samplesPerSecond)
        #expect(r.exits.map(\.name) == ["device-exit", "edge-exit"])
        #expect(r.exits[1].latencyMs.p99 == report.exits[1].latencyMs.p99)
    }

    @Test func resultRoundTripsThroughJSON() throws {
        let result = ClusterBenchResult(
            topology: "topology/local.yaml", samples: 10, samplesPerSecond: 100, samplesPerSecondConcurrency1: 50,
            exits: ["edge-exit": .init(concurrency1: .init(samples: 1, p50Ms: 0.2, p99Ms: 0.3),
                                       defaultConcurrency: .init(samples: 1, p50Ms: 0.4, p99Ms: 0.9))],
            batches: ["edge": "batches by size: 1: 1 (1 batches, 1 samples, mean 1.0)"])
        let back = try JSONDecoder().decode(ClusterBenchResult.self, from: JSONEncoder().encode(result))
        #expect(back.exits["edge-exit"]?.defaultConcurrency.p99Ms == 0.9)
        #expect(back.samplesPerSecond == 100)
    }

    /// A real cluster of separate processes, when BRANCHY_BIN names a folder of built executables
    /// (e.g. `BRANCHY_BIN=$(swift build -c release --show-bin-path) swift test --filter ClusterBench`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BRANCHY_BIN"] != nil))
    func runsTheLocalCluster() async throws {
        let bin = URL(fileURLWithPath: ProcessInfo.processInfo.environment["BRANCHY_BIN"]!)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let result = try await ClusterBench.run(binDirectory: bin, topology: root.appendingPathComponent("topology/local.yaml").path,
                                                samples: 500)
        #expect(result.samplesPerSecond > 0)
        #expect(Set(result.exits.keys) == ["device-exit", "edge-exit", "cloud-exit"])
        for (name, exit) in result.exits {
            #expect(exit.concurrency1.samples > 0 && exit.concurrency1.p50Ms > 0 && exit.concurrency1.p99Ms >= exit.concurrency1.p50Ms, "\(name)")
        }
        #expect(result.batches["edge"]?.hasPrefix("batches by size") == true)
        // The run with one request in flight asked for timings: both links report them, and no
        // link costs more than its whole round trip.
        #expect(result.hopsConcurrency1.map(\.link) == ["device->edge", "edge->cloud"])
        for h in result.hopsConcurrency1 {
            #expect(h.requests > 0 && h.roundTripMs.p50 > 0 && h.heldMs.p50 > 0 && h.linkMs.p50 > 0, "\(h)")
            #expect(h.linkMs.p50 <= h.roundTripMs.p99, "\(h)")
        }
        #expect(result.deviceComputeMsConcurrency1 > 0)
    }
}
