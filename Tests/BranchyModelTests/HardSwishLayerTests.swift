import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The `hardswish` operator in a network: planned, run layer by layer and compiled, trained.
@Suite struct HardSwishLayerTests {
    /// HardSwish straight on the input (its compiled step sees exactly the layer's input), after
    /// a convolution, and between two linear layers.
    static let spec = ModelSpec(name: "hs", input: [2, 5, 5], classes: 3, stages: [
        StageSpec(name: "a", trunk: [.hardSwish, .conv("c", out: 3, kernel: 3, pad: 1), .hardSwish],
                  exit: ExitSpec(name: "ea", layers: [.flatten, .linear("fc1", out: 6), .hardSwish, .linear("fc2", out: 3)])),
        StageSpec(name: "b", trunk: [.maxPool(2, ceil: true), .hardSwish],
                  exit: ExitSpec(name: "eb", layers: [.flatten, .linear("fc", out: 3)])),
    ])

    @Test func decodesAndPlans() throws {
        #expect(try JSONDecoder().decode(LayerSpec.self, from: Data(#"{"op": "hardswish"}"#.utf8)) == .hardSwish)
        let network = try Network(spec: Self.spec)
        #expect(network.stages[0].trunk[0] is HardSwishLayer)
        #expect(network.stages[0].trunk[0].parameters.isEmpty)
        #expect(network.stages.map(\.outputShape) == [[3, 5, 5], [3, 3, 3]])
        #expect(network.parameters.map(\.name) == ["a.trunk.c.weight", "a.trunk.c.bias", "a.exit.fc1.weight", "a.exit.fc1.bias",
                                                   "a.exit.fc2.weight", "a.exit.fc2.bias", "b.exit.fc.weight", "b.exit.fc.bias"])
    }

    /// The layer gives the twin's bits; the compiled network agrees with the layers (bit for
    /// bit where HardSwish sees the input itself, within rounding after a convolution).
    @Test(arguments: KernelISA.supported)
    func compiledMatchesLayers(isa: KernelISA) throws {
        let network = try ModelFixture.randomNetwork(Self.spec, seed: 3)
        var input = ModelFixture.randomInput(Self.spec.input, count: 11, seed: 4)
        for i in stride(from: 0, to: input.count, by: 7) { input.data[i] *= 5 }  // some beyond ±3
        let layer = network.stages[0].trunk[0].forward(input, training: false)
        #expect(layer.data.map(\.bitPattern) == HardSwish.reference(input).data.map(\.bitPattern))

        let oneLayer = ModelSpec(name: "one", input: [2, 5, 5], classes: 3, stages: [
            StageSpec(name: "a", trunk: [.hardSwish], exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 3)])),
        ])
        let compiledOne = CompiledNetworkTests.compiledOutputs(CompiledNetwork(try ModelFixture.randomNetwork(oneLayer, seed: 5), isa: isa),
                                                               input, perSample: false)
        #expect(compiledOne.features[0].map(\.bitPattern) == layer.data.map(\.bitPattern))

        let got = CompiledNetworkTests.compiledOutputs(CompiledNetwork(network, isa: isa), input, perSample: false)
        let want = CompiledNetworkTests.referenceOutputs(network, input)
        for i in network.stages.indices {
            #expect(maxDifference(got.features[i], want.features[i]) <= 2e-5 * max(1, want.features[i].map(abs).max() ?? 1))
            #expect(maxDifference(got.logits[i], want.logits[i]) <= 2e-4 * max(1, want.logits[i].map(abs).max() ?? 1))
        }
        #expect(got == CompiledNetworkTests.compiledOutputs(CompiledNetwork(network, isa: isa), input, perSample: true))
    }

    /// The backward pass through HardSwish layers against finite differences of the joint loss.
    @Test func gradientCheck() throws {
        let (mismatches, checked, worst) = try GradientCheckTests.check(Self.spec, seed: 17, weights: [1, 0.5])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
        #expect(checked.values.reduce(0, +) == (try Network(spec: Self.spec)).parameters.reduce(0) { $0 + $1.value.count })
    }

    /// A model with HardSwish saves and loads like any other (no tensors of its own).
    @Test func savesAndLoads() throws {
        let scratch = try ScratchDirectory()
        let network = try ModelFixture.randomNetwork(Self.spec, seed: 8)
        let model = try Model.save(network, to: scratch.path("hs"))
        #expect(model.spec == Self.spec)
        #expect(model.network.stages[1].trunk[1] is HardSwishLayer)
        let json = try String(contentsOf: scratch.path("hs/model.json"), encoding: .utf8)
        #expect(json.contains(#""op" : "hardswish""#))
    }
}
