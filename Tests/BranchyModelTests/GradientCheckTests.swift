import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// Whole-network gradient check: the backward passes of every layer, chained the way the
/// joint BranchyNet loss chains them (each exit's gradient added to the trunk gradient
/// coming back from the later stages), against central finite differences of the loss.
@Suite struct GradientCheckTests {
    /// The joint loss Σᵢ wᵢ · mean cross-entropy of exit i, computed in Double from the logits.
    /// With `training`, batch norms with a momentum normalise with the batch's statistics, as
    /// the training pass does (the running statistics they update do not enter the loss).
    static func jointLoss(_ network: Network, _ x: Tensor, _ labels: [Int], _ weights: [Float], training: Bool = false) -> Double {
        var features = x
        var loss = 0.0
        for i in 0..<network.stages.count {
            features = network.trunk(i, features, training: training)
            let logits = network.exitLogits(i, features, training: training)
            let c = logits.shape[1]
            var sum = 0.0
            for s in 0..<labels.count {
                let row = (0..<c).map { Double(logits.data[s * c + $0]) }
                let m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                sum += lse - row[labels[s]]
            }
            loss += Double(weights[i]) * sum / Double(labels.count)
        }
        return loss
    }

    /// One training forward and backward pass, as `Trainer.step` does it, without the update:
    /// leaves the gradient of the joint loss in every `Parameter.grad` and returns the loss.
    @discardableResult
    static func forwardBackward(_ network: Network, _ x: Tensor, _ labels: [Int], _ weights: [Float]) -> Float {
        for p in network.parameters { p.zeroGrad() }
        return network.jointLossGradients(images: x, labels: labels, exitWeights: weights).loss
    }

    struct Mismatch: CustomStringConvertible {
        var parameter: String, index: Int, analytic: Double, numeric: Double
        var description: String { "\(parameter)[\(index)]: analytic \(analytic), numeric \(numeric)" }
    }

    /// Compares every element of every parameter's gradient against a central difference.
    /// Returns the mismatches, the number of elements checked and the largest relative error
    /// among gradients above 1e-2 in magnitude.
    static func check(_ spec: ModelSpec, seed: UInt64, weights: [Float], training: Bool = false, absolute: Double = 3e-5) throws
        -> (mismatches: [Mismatch], checked: [String: Int], worst: Double)
    {
        let network = try ModelFixture.randomNetwork(spec, seed: seed)
        let batch = 4
        let x = ModelFixture.randomInput(spec.input, count: batch, seed: seed &+ 1)
        var rng = SeededRandom(seed: seed &+ 2)
        let labels = (0..<batch).map { _ in Int(rng.next() % UInt64(spec.classes)) }

        let loss = forwardBackward(network, x, labels, weights)
        #expect(abs(Double(loss) - jointLoss(network, x, labels, weights, training: training)) < 1e-5)

        let eps: Float = 1e-3
        var mismatches: [Mismatch] = []
        var checked: [String: Int] = [:]
        var worst = 0.0
        for p in network.parameters {
            let analytic = p.grad.data.map(Double.init)
            for i in 0..<p.value.count {
                let v = p.value.data[i]
                let up = v + eps, down = v - eps
                p.value.data[i] = up
                let lUp = jointLoss(network, x, labels, weights, training: training)
                p.value.data[i] = down
                let lDown = jointLoss(network, x, labels, weights, training: training)
                p.value.data[i] = v
                let numeric = (lUp - lDown) / (Double(up) - Double(down))
                let a = analytic[i]
                let error = abs(a - numeric)
                let scale = max(abs(a), abs(numeric))
                if scale > 1e-2 { worst = max(worst, error / scale) }
                // Relative 1e-2, plus an absolute allowance for the float32 forward pass's
                // rounding (about 1e-5 in the difference quotient with this eps).
                if error > 1e-2 * scale + absolute {
                    mismatches.append(Mismatch(parameter: p.name, index: i, analytic: a, numeric: numeric))
                }
                checked[p.name, default: 0] += 1
            }
        }
        return (mismatches, checked, worst)
    }

    @Test func convPoolReLULinear() throws {
        let (mismatches, checked, worst) = try Self.check(ModelFixture.tiny, seed: 11, weights: [0.7, 1.3])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
        // Every layer with weights was checked.
        let network = try Network(spec: ModelFixture.tiny)
        #expect(Set(checked.keys) == Set(network.parameters.map(\.name)))
        #expect(checked.values.reduce(0, +) == network.parameters.reduce(0) { $0 + $1.value.count })
    }

    @Test func batchNormAndAveragePool() throws {
        let (mismatches, checked, worst) = try Self.check(ModelFixture.tinyBatchNorm, seed: 12, weights: [1, 1])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
        #expect(checked["a.trunk.bn1.weight"] == 3)
        #expect(checked["b.exit.bn3.bias"] == 5)
        #expect(checked["b.trunk.c2.weight"] == 48)
    }

    @Test func gradientsAreNotTrivial() throws {
        // Guard against a check that passes because every gradient is zero: every parameter
        // of both models receives some gradient from the joint loss.
        for spec in [ModelFixture.tiny, ModelFixture.tinyBatchNorm] {
            let network = try ModelFixture.randomNetwork(spec, seed: 13)
            let x = ModelFixture.randomInput(spec.input, count: 4, seed: 14)
            Self.forwardBackward(network, x, [0, 1, 2, 1], [1, 1])
            for p in network.parameters {
                #expect(p.grad.data.contains { $0 != 0 }, "\(spec.name): \(p.name) has an all-zero gradient")
            }
        }
    }

    @Test func exitWeightsScaleEachExitsContribution() throws {
        // With the first exit's weight at zero, stage b's parameters see only exit b, and the
        // exit-a branch gets no gradient at all.
        let network = try ModelFixture.randomNetwork(ModelFixture.tiny, seed: 15)
        let x = ModelFixture.randomInput([1, 6, 6], count: 4, seed: 16)
        let labels = [2, 0, 1, 1]
        Self.forwardBackward(network, x, labels, [0, 1])
        let onlyB = network.parameters.map(\.grad)
        #expect(network.parameters.first { $0.name == "a.exit.fc.weight" }!.grad.data.allSatisfy { $0 == 0 })

        Self.forwardBackward(network, x, labels, [1, 2])
        for (p, g) in zip(network.parameters, onlyB) where p.name.hasPrefix("b.") {
            for j in 0..<g.count { #expect(abs(p.grad.data[j] - 2 * g.data[j]) <= 1e-6 * max(1, abs(g.data[j]))) }
        }
    }
}
