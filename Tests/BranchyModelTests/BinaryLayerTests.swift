import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The `sign` and `binlinear` ops: planning, training passes, the compiled steps and b-lenet3-bin.
@Suite struct BinaryLayerTests {
    /// Signs and binary linear layers in trunks and exits, with and without bias, on inputs whose
    /// sizes are not multiples of 64. Every value a sign reads comes straight from the input or
    /// from steps the compiled path computes with the same arithmetic, so results must be equal.
    static var binary: ModelSpec {
        ModelSpec(name: "binary", input: [2, 5, 7], classes: 7, stages: [
            StageSpec(name: "a", trunk: [LayerSpec(op: "batchnorm", name: "bn"), .sign],
                      exit: ExitSpec(name: "exit-a", layers: [.flatten, .binaryLinear("fc", out: 7)])),
            StageSpec(name: "b", trunk: [.flatten, LayerSpec(op: "binlinear", name: "h", out: 33, bias: false), .sign],
                      exit: ExitSpec(name: "exit-b", layers: [.binaryLinear("fc", out: 7)])),
        ])
    }

    @Test func plansTheNewOps() throws {
        let network = try Network(spec: Self.binary)
        #expect(network.stages[0].trunk[1] is SignLayer)
        #expect(network.stages[0].exit[1] is BinaryLinearLayer)
        #expect(network.stages[1].trunk[1].parameters.map(\.name) == ["b.trunk.h.weight"])
        #expect(network.stages[1].outputShape == [33])
        let unflat = ModelSpec(name: "x", input: [1, 4, 4], classes: 2, stages: [
            StageSpec(name: "a", trunk: [], exit: ExitSpec(name: "e", layers: [.binaryLinear("fc", out: 2)])),
        ])
        let error = try #require(ModelFixture.buildError(unflat))
        #expect("\(error)".contains("'binlinear' needs a flat input"))
        #expect(try JSONDecoder().decode(LayerSpec.self, from: Data(#"{"op": "sign"}"#.utf8)) == .sign)
    }

    @Test(arguments: KernelISA.supported)
    func compiledStepsMatchTheLayersBitForBit(isa: KernelISA) throws {
        let network = try ModelFixture.randomNetwork(Self.binary, seed: 5)
        let net = CompiledNetwork(network, isa: isa)
        for count in [1, 3, 13, 29] {
            let input = ModelFixture.randomInput(Self.binary.input, count: count, seed: UInt64(count))
            let got = CompiledNetworkTests.compiledOutputs(net, input, perSample: false)
            #expect(got == CompiledNetworkTests.compiledOutputs(net, input, perSample: true))
            var x = input
            for i in network.stages.indices {
                x = network.trunk(i, x)
                #expect(x.data.allSatisfy { $0 == 1 || $0 == -1 })
                #expect(got.features[i] == x.data, "stage \(i), \(count) samples on \(isa)")
                #expect(got.logits[i] == network.exitLogits(i, x).data, "stage \(i), \(count) samples on \(isa)")
            }
        }
    }

    /// The layers' backward passes chain the straight-through estimators: a sign passes the gradient
    /// where its input lies in [-1, 1]; a binary linear layer's input gradient is dy · α·sign(W).
    @Test func backwardThroughSignAndBinaryLinear() throws {
        let spec = ModelSpec(name: "s", input: [1, 2, 3], classes: 2, stages: [
            StageSpec(name: "a", trunk: [.sign], exit: ExitSpec(name: "e", layers: [.flatten, .binaryLinear("fc", out: 2)])),
        ])
        let network = try ModelFixture.randomNetwork(spec, seed: 3)
        let sign = network.stages[0].trunk[0], fc = network.stages[0].exit[1] as! BinaryLinearLayer
        let x = Tensor(shape: [2, 1, 2, 3], data: [-2, -0.5, 0, 0.5, 1, 3, 0.1, -0.1, 1.5, -1.5, 0.9, -0.9])
        let s = sign.forward(x, training: true)
        #expect(s.data == [-1, -1, 1, 1, 1, 1, 1, -1, 1, -1, 1, -1])
        let flat = s.reshaped([2, 6])
        _ = fc.forward(flat, training: true)
        let dy = Tensor(shape: [2, 2], data: [1, -2, 0.5, 3])
        let dFlat = fc.backward(dy, needInputGradient: true)!
        let alpha = BinaryLinear.scales(weight: fc.weight.value)
        for n in 0..<2 { for i in 0..<6 {
            let want = (0..<2).reduce(Float(0)) { $0 + dy.data[n * 2 + $1] * alpha[$1] * Sign.value(fc.weight.value.data[$1 * 6 + i]) }
            #expect(abs(dFlat.data[n * 6 + i] - want) < 1e-6)
        } }
        let dx = sign.backward(dFlat.reshaped(x.shape), needInputGradient: true)!
        for i in 0..<12 { #expect(dx.data[i] == (abs(x.data[i]) <= 1 ? dFlat.data[i] : 0)) }
    }

    @Test func bLeNet3BinForwardsBitsAndSmallMaps() throws {
        let spec = try #require(Architectures.named("b-lenet3-bin"))
        #expect(Architectures.rationale("b-lenet3-bin") != nil)
        let network = try Network(spec: spec)
        network.initialize(seed: 1)
        #expect(network.stages.map(\.name) == ["device", "edge", "cloud"])
        let device = network.stages[0].outputShape.reduce(1, *)
        #expect(device <= 392)
        #expect(network.stages[1].outputShape.reduce(1, *) <= device)
        #expect(network.stages[0].trunk.last is SignLayer)
        #expect(network.stages[0].exit.contains { $0 is BinaryLinearLayer })
        let features = network.trunk(0, ModelFixture.randomInput(spec.input, count: 5, seed: 1))
        #expect(features.data.allSatisfy { $0 == 1 || $0 == -1 })
    }

    /// Joint training moves the loss of a network with a binarised device stage.
    @Test func jointTrainingLowersTheLoss() throws {
        let spec = try #require(Architectures.named("b-lenet3-bin"))
        let network = try Network(spec: spec)
        network.initialize(seed: 2)
        let x = ModelFixture.randomInput(spec.input, count: 16, seed: 7)
        let labels = (0..<16).map { $0 % 10 }
        var first: Float = 0, last: Float = 0
        for step in 0..<30 {
            for p in network.parameters { p.zeroGrad() }
            let loss = network.jointLossGradients(images: x, labels: labels, exitWeights: [1, 1, 1]).loss
            if step == 0 { first = loss }
            last = loss
            for p in network.parameters {
                for i in 0..<p.value.count { p.value.data[i] -= 0.01 * p.grad.data[i] }
            }
        }
        #expect(last < first * 0.8, "loss \(first) → \(last)")
    }
}

/// `batchnorm` with a `momentum`: batch statistics in training, running statistics updated.
@Suite struct BatchNormMomentumTests {
    static func spec(momentum: Float?) -> ModelSpec {
        ModelSpec(name: "bn", input: [2, 3, 3], classes: 2, stages: [
            StageSpec(name: "a", trunk: [.batchNorm("bn", momentum: momentum)],
                      exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 2)])),
        ])
    }

    @Test func trainingUpdatesTheRunningStatistics() throws {
        let network = try Network(spec: Self.spec(momentum: 0.25))
        let bn = try #require(network.stages[0].trunk[0] as? BatchNormLayer)
        let x = ModelFixture.randomInput([2, 3, 3], count: 4, seed: 1)
        _ = bn.forward(x, training: true)
        let r = BatchNorm.forwardTraining(x: x, gamma: bn.gamma.value, beta: bn.beta.value, epsilon: bn.epsilon)
        for c in 0..<2 {
            #expect(abs(bn.mean.data[c] - 0.25 * r.mean[c]) < 1e-6)
            #expect(abs(bn.variance.data[c] - (0.75 + 0.25 * r.variance[c] * 36 / 35)) < 1e-6)
        }
        // Inference reads the running statistics and changes nothing.
        let before = bn.mean
        _ = bn.forward(x, training: false)
        #expect(bn.mean == before)
    }

    @Test func momentumIsCheckedAndOmittedWhenAbsent() throws {
        let error = try #require(ModelFixture.buildError(Self.spec(momentum: 1.5)))
        #expect("\(error)".contains("momentum"))
        let encoded = String(decoding: try JSONEncoder().encode(Self.spec(momentum: nil)), as: UTF8.self)
        #expect(!encoded.contains("momentum"))
    }
}
