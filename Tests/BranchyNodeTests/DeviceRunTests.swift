import BranchyReport
import Foundation
import Testing
@testable import BranchyNode

extension Sockets {
    /// The device's run as a task group: a cancelled run (graceful shutdown) starts no new sample
    /// and returns every sample it started, answered.
    @Suite(.serialized) struct DeviceRunTests {
        @Test func aCancelledRunAnswersWhatItStarted() async throws {
            let fixture = try Fixture.shared()
            try await Cluster.with { cluster in
                _ = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let count = 400
                let run = Task { await device.run(data: fixture.data, count: count, concurrency: 4, rate: 100) { _ in } }
                try await Task.sleep(for: .milliseconds(400))
                run.cancel()
                let records = await run.value
                #expect(records.count > 0 && records.count < count, "\(records.count) records")
                #expect(records.allSatisfy { $0.status == .answered && $0.node == "cloud" })
                #expect(records.map(\.sample) == Array(0..<records.count), "the samples started are the first ones, each once")
            }
        }

        /// Lanes share the window and the samples between them: every sample is answered once.
        @Test func lanesAnswerEverySampleOnce() async throws {
            let fixture = try Fixture.shared()
            try await Cluster.with { cluster in
                _ = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let records = await device.run(data: fixture.data, count: 50, concurrency: 5, lanes: 3) { _ in }
                #expect(records.map(\.sample) == Array(0..<50))
                #expect(records.allSatisfy { $0.status == .answered })
            }
        }
    }
}
