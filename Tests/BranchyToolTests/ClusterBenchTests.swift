import Foundation
import Testing
@testable import branchy

@Suite struct ClusterBenchTests {
    /// The bench reads the device's JSON report: the fields it needs must be there under these names.
    @Test func readsTheDevicesReport() throws {
        let json = """
            {"samples": 3, "answered": 3, "degraded": 0, "failed": 0, "samplesPerSecond": 1234.5,
             "exits": [{"name": "device-exit", "count": 2, "latencyMs": {"p50": 0.05, "p99": 0.09, "mean": 0.06}},
                       {"name": "edge-exit", "count": 1, "latencyMs": {"p50": 0.2, "p99": 0.3, "mean": 0.25}}]}
            """
        let r = try JSONDecoder().decode(ClusterBench.Report.self, from: Data(json.utf8))
        #expect(r.samplesPerSecond == 1234.5)
        #expect(r.exits.map(\.name) == ["device-exit", "edge-exit"])
        #expect(r.exits[1].latencyMs.p99 == 0.3)
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
    }
}
