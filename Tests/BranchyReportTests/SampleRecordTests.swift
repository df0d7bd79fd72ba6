import BranchyReport
import Testing

/// A sample's prediction line: one entropy per exit reached, the passed exits' from the protocol.
@Suite struct SampleRecordTests {
    func record(exit: Int, entropy: Float, passed: [Float?]) -> SampleRecord {
        var r = SampleRecord(sample: 7, label: 1, status: .answered, reason: "", exit: exit, exitName: "e\(exit)", node: "cloud",
                             predicted: 3, entropy: entropy, latencySeconds: 0.01, hops: [])
        r.passedEntropies = passed
        return r
    }

    @Test func everyExitReachedHasItsEntropy() {
        let r = record(exit: 2, entropy: 0.25, passed: [1.5, 0.75])
        #expect(r.entropies == [1.5, 0.75, 0.25])
        #expect(r.predictionLine == #"{"sample":7,"exit":2,"class":3,"status":"answered","entropies":[1.5,0.75,0.25]}"# + "\n")
    }

    @Test func exitsNoOneReportedAreNull() {
        // A raw-offload device behind a version 1 upstream: nothing passed is known.
        let r = record(exit: 2, entropy: 0.25, passed: [])
        #expect(r.entropies == [nil, nil, 0.25])
        #expect(r.predictionLine.hasSuffix(#""entropies":[null,null,0.25]}"# + "\n"))
        #expect(record(exit: 2, entropy: 0.25, passed: [0.5, nil]).entropies == [0.5, nil, 0.25])
    }
}
