import BranchyModel
import BranchyTensor
import Testing
@testable import BranchyTraining

@Suite struct AdamTests {
    @Test func firstStepMovesByLearningRateTimesSign() {
        let p = Parameter(name: "w", value: Tensor(shape: [5], data: [1, -2, 0.5, 3, 0]))
        p.grad = Tensor(shape: [5], data: [0.3, -4, 1e-3, 0, -1e5])
        var adam = Adam()
        adam.update([p], lr: 0.01)
        // Bias correction makes the first step m̂/√v̂ = g/|g|: a step of lr against the gradient's sign.
        let expected: [Float] = [1 - 0.01, -2 + 0.01, 0.5 - 0.01, 3, 0 + 0.01]
        for i in 0..<5 { #expect(abs(p.value.data[i] - expected[i]) < 1e-6, "element \(i): \(p.value.data[i])") }
        #expect(p.grad.data == [0, 0, 0, 0, 0])
        #expect(adam.step == 1)
        // Moments: m = (1 − β₁) g, v = (1 − β₂) g².
        #expect(abs(p.m[1] - 0.1 * -4) < 1e-6)
        #expect(abs(p.v[1] - 0.001 * 16) < 1e-6)
    }

    @Test func constantGradientKeepsStepSize() {
        let p = Parameter(name: "w", value: Tensor(shape: [2], data: [0, 0]))
        var adam = Adam()
        for _ in 0..<5 {
            p.grad = Tensor(shape: [2], data: [2, -0.5])
            adam.update([p], lr: 0.1)
        }
        #expect(adam.step == 5)
        #expect(abs(p.value.data[0] - -0.5) < 1e-5)
        #expect(abs(p.value.data[1] - 0.5) < 1e-5)
    }

    @Test func weightDecayOnlyOnMatrices() {
        let w = Parameter(name: "fc.weight", value: Tensor(shape: [1, 2], data: [2, -4]))
        let b = Parameter(name: "fc.bias", value: Tensor(shape: [2], data: [2, -4]))
        w.grad = Tensor(shape: [1, 2], data: [1, 1])
        b.grad = Tensor(shape: [2], data: [1, 1])
        var adam = Adam(weightDecay: 0.1)
        adam.update([w, b], lr: 0.01)
        // Decoupled decay: w −= lr · (g/|g| + λ w).
        #expect(abs(w.value.data[0] - (2 - 0.01 * (1 + 0.2))) < 1e-6)
        #expect(abs(w.value.data[1] - (-4 - 0.01 * (1 - 0.4))) < 1e-6)
        #expect(abs(b.value.data[0] - (2 - 0.01)) < 1e-6)
        #expect(abs(b.value.data[1] - (-4 - 0.01)) < 1e-6)
    }

    @Test func zeroLearningRateOnlyClearsGradients() {
        let p = Parameter(name: "w", value: Tensor(shape: [3], data: [1, 2, 3]))
        p.grad = Tensor(shape: [3], data: [5, 6, 7])
        var adam = Adam()
        adam.update([p], lr: 0)
        #expect(p.value.data == [1, 2, 3])
        #expect(p.grad.data == [0, 0, 0])
    }
}
