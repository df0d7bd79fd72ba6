import BranchyModel
import Foundation
import Testing
@testable import BranchyTraining

@Suite struct EvalReportTests {
    /// Six samples, three exits, labels 0…5.
    ///
    /// With thresholds [0.5, 0.3]: samples 0 and 2 leave at exit 0 (2 wrong), 1 and 3 at exit 1
    /// (3 wrong; sample 1 has entropy exactly 0.5 at exit 0 and stays), 4 and 5 at the last exit
    /// (sample 4 has entropy exactly 0.3 at exit 1 and stays).
    static let trace = TrainingFixture.trace(names: ["e0", "e1", "e2"], labels: [0, 1, 2, 3, 4, 5], [
        [(0, 0.1), (1, 0.5), (9, 0.2), (3, 0.9), (4, 0.6), (5, 0.7)],
        [(8, 0.0), (1, 0.2), (8, 0.0), (0, 0.1), (4, 0.3), (5, 0.4)],
        [(0, 2.0), (7, 2.0), (2, 2.0), (3, 2.0), (4, 2.0), (5, 2.0)],
    ])

    @Test func countsFractionsAndAccuracy() {
        let r = EvalReport(trace: Self.trace, policy: ExitPolicy(thresholds: [0.5, 0.3]), codec: "int8")
        #expect(r.samples == 6)
        #expect(r.codec == "int8")
        #expect(r.takenExit == [0, 1, 0, 1, 2, 2])
        #expect(r.predictions == [0, 1, 9, 0, 4, 5])
        #expect(r.exits.map(\.name) == ["e0", "e1", "e2"])
        #expect(r.exits.map(\.threshold) == [0.5, 0.3, nil])
        #expect(r.exits.map(\.count) == [2, 2, 2])
        let third: Double = 2.0 / 6
        #expect(r.exits.map(\.fraction) == [third, third, third])
        #expect(r.exits.map(\.accuracy) == [0.5, 0.5, 1.0])
        #expect(r.accuracy == 4.0 / 6)
        // The last exit alone gets everything but sample 1 right.
        #expect(r.finalOnlyAccuracy == 5.0 / 6)
    }

    @Test func extremeThresholds() {
        // Zero thresholds: everything runs to the last exit, so accuracy is the final-only accuracy.
        let none = EvalReport(trace: Self.trace, policy: ExitPolicy(thresholds: [0, 0]), codec: "float32")
        #expect(none.exits.map(\.count) == [0, 0, 6])
        let fiveSixths: Double = 5.0 / 6
        #expect(none.exits.map(\.accuracy) == [0, 0, fiveSixths])
        #expect(none.accuracy == none.finalOnlyAccuracy)
        // Huge thresholds: everything leaves at the first exit.
        let all = EvalReport(trace: Self.trace, policy: ExitPolicy(thresholds: [10, 10]), codec: "float32")
        #expect(all.exits.map(\.count) == [6, 0, 0])
        #expect(all.exits.map(\.fraction) == [1, 0, 0])
        // Exit 0 gets all but sample 2 right.
        #expect(all.accuracy == 5.0 / 6)
        #expect(all.exits[0].accuracy == 5.0 / 6)
        #expect(all.finalOnlyAccuracy == 5.0 / 6)
    }

    @Test func emptyTrace() {
        let empty = TrainingFixture.trace(names: ["e0", "e1"], labels: [], [[], []])
        let r = EvalReport(trace: empty, policy: ExitPolicy(thresholds: [0.5]), codec: "float32")
        #expect(r.samples == 0)
        #expect(r.accuracy == 0 && r.finalOnlyAccuracy == 0)
        #expect(r.exits.map(\.count) == [0, 0])
        #expect(r.exits.allSatisfy { $0.fraction == 0 && $0.accuracy == 0 })
    }

    @Test func jsonShape() throws {
        let r = EvalReport(trace: Self.trace, policy: ExitPolicy(thresholds: [0.5, 0.25]), codec: "float16")
        let data = try JSONEncoder().encode(r)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["samples", "accuracy", "finalOnlyAccuracy", "exits", "codec"])
        #expect(object["samples"] as? Int == 6)
        #expect(object["codec"] as? String == "float16")
        #expect((object["accuracy"] as? NSNumber)?.doubleValue == r.accuracy)
        #expect((object["finalOnlyAccuracy"] as? NSNumber)?.doubleValue == 5.0 / 6)
        let exits = try #require(object["exits"] as? [[String: Any]])
        #expect(exits.count == 3)
        for (i, e) in exits.enumerated() {
            #expect(Set(e.keys) == ["name", "threshold", "count", "fraction", "accuracy"])
            #expect(e["name"] as? String == r.exits[i].name)
            #expect(e["count"] as? Int == r.exits[i].count)
            #expect((e["fraction"] as? NSNumber)?.doubleValue == r.exits[i].fraction)
            #expect((e["accuracy"] as? NSNumber)?.doubleValue == r.exits[i].accuracy)
        }
        #expect((exits[0]["threshold"] as? NSNumber)?.floatValue == 0.5)
        #expect((exits[1]["threshold"] as? NSNumber)?.floatValue == 0.25)
        // The last exit has no threshold: an explicit null, not a missing key.
        #expect(exits[2]["threshold"] is NSNull)

        // Decoding gives back the report without the per-sample arrays.
        var expected = r
        expected.takenExit = []
        expected.predictions = []
        #expect(try JSONDecoder().decode(EvalReport.self, from: data) == expected)
    }

    @Test func table() {
        let r = EvalReport(trace: Self.trace, policy: ExitPolicy(thresholds: [0.5, 0.3]), codec: "int8")
        let lines = r.table.split(separator: "\n").map(String.init)
        #expect(lines.count == 6)
        #expect(lines[0].hasPrefix("exit"))
        #expect(lines[1].hasPrefix("e0") && lines[1].contains("0.5000") && lines[1].contains("33.33%") && lines[1].contains("50.00%"))
        #expect(lines[3].hasPrefix("e2") && lines[3].contains(" - ") && lines[3].contains("100.00%"))
        #expect(lines[4] == "overall accuracy 66.67% over 6 samples (codec int8)")
        #expect(lines[5] == "final exit alone 83.33%")
    }
}
