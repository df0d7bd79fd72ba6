import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

@Suite struct ExitPolicyTests {
    @Test func entropyBelowThresholdExits() {
        let policy = ExitPolicy(thresholds: [0.5, 0.2])
        #expect(policy.exits(at: 0, of: 3, entropy: 0.49))
        #expect(!policy.exits(at: 0, of: 3, entropy: 0.51))
        #expect(policy.exits(at: 1, of: 3, entropy: 0.1))
        #expect(!policy.exits(at: 1, of: 3, entropy: 0.3))
    }

    @Test func comparisonIsStrict() {
        let policy = ExitPolicy(thresholds: [0.5, 0.25])
        #expect(!policy.exits(at: 0, of: 3, entropy: 0.5))
        #expect(!policy.exits(at: 1, of: 3, entropy: 0.25))
        #expect(policy.exits(at: 0, of: 3, entropy: Float(0.5).nextDown))
        // A zero threshold never lets a sample out early, even at zero entropy.
        #expect(!ExitPolicy(thresholds: [0]).exits(at: 0, of: 2, entropy: 0))
    }

    @Test func lastExitAlwaysExits() {
        let policy = ExitPolicy(thresholds: [0.1])
        #expect(policy.exits(at: 1, of: 2, entropy: 100))
        #expect(policy.exits(at: 1, of: 2, entropy: .infinity))
        #expect(policy.exits(at: 1, of: 2, entropy: .nan))
        // A single-exit model needs no thresholds at all.
        #expect(ExitPolicy(thresholds: []).exits(at: 0, of: 1, entropy: 2.3))
        // NaN entropy never leaves early.
        #expect(!policy.exits(at: 0, of: 2, entropy: .nan))
    }

    @Test func exitOutputFromLogits() {
        // Row 0: probabilities ¼, ½, ¼ (logits 0, ln 2, 0).
        // Row 1: uniform over three classes; ties go to the first class.
        // Row 2: one class dominates completely.
        // Row 3: shifting logits by a constant changes nothing (row 0 + 100).
        let ln2 = Float(M_LN2)
        let logits = Tensor(shape: [4, 3], data: [
            0, ln2, 0,
            7, 7, 7,
            -5, 0, 1000,
            100, 100 + ln2, 100,
        ])
        let out = ExitOutput.from(logits: logits)
        #expect(out.count == 4)

        #expect(out[0].predicted == 1)
        #expect(abs(out[0].confidence - 0.5) < 1e-6)
        // H = −(¼ ln ¼ · 2 + ½ ln ½) = 1.5 ln 2
        #expect(abs(out[0].entropy - Float(1.5 * M_LN2)) < 1e-6)

        #expect(out[1].predicted == 0)
        #expect(abs(out[1].confidence - 1.0 / 3) < 1e-6)
        #expect(abs(out[1].entropy - Float(log(3.0))) < 1e-6)

        #expect(out[2].predicted == 2)
        #expect(out[2].confidence == 1)
        #expect(out[2].entropy == 0)

        #expect(out[3].predicted == 1)
        #expect(abs(out[3].confidence - 0.5) < 1e-6)
        #expect(abs(out[3].entropy - out[0].entropy) < 1e-6)
    }

    @Test func exitOutputAgainstDoublePrecision() {
        // Two classes with logits (0, 1): p = (1 / (1 + e), e / (1 + e)).
        let out = ExitOutput.from(logits: Tensor(shape: [1, 2], data: [0, 1]))[0]
        let p1 = M_E / (1 + M_E), p0 = 1 - p1
        #expect(out.predicted == 1)
        #expect(abs(Double(out.confidence) - p1) < 1e-6)
        #expect(abs(Double(out.entropy) - -(p0 * log(p0) + p1 * log(p1))) < 1e-6)
    }

    @Test func classifyRunsTheExitBranch() throws {
        let network = try ModelFixture.randomNetwork(ModelFixture.tiny, seed: 8)
        let x = ModelFixture.randomInput([1, 6, 6], count: 5, seed: 2)
        let features = network.trunk(0, x)
        let out = network.classify(exit: 0, features: features)
        #expect(out == ExitOutput.from(logits: network.exitLogits(0, features)))
        #expect(out.count == 5)
        #expect(out.allSatisfy { $0.entropy >= 0 && $0.entropy <= Float(log(3.0)) + 1e-6 && $0.confidence >= 1.0 / 3 - 1e-6 })
    }
}
