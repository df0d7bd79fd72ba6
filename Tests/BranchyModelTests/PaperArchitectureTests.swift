import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The paper's CIFAR-10 networks as built-in architectures: their shapes, one training step
/// on random 3×32×32 images, compiled inference against the layers, and a save and load.
@Suite(.serialized) struct PaperArchitectureTests {
    func shapes(_ network: Network) -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: network.expectedTensors.map { ($0.name, $0.shape) })
    }

    @Test func bAlexNetLayout() throws {
        let network = try Network(spec: try #require(Architectures.named("b-alexnet")))
        #expect(network.stages.map(\.inputShape) == [[3, 32, 32], [64, 16, 16], [96, 8, 8]])
        #expect(network.stages.map(\.outputShape) == [[64, 16, 16], [96, 8, 8], [128]])
        #expect(network.stages.map(\.exitName) == ["exit1", "exit2", "final"])
        let s = shapes(network)
        #expect(s["device.trunk.conv1.weight"] == [32, 3, 5, 5])
        #expect(s["device.trunk.conv2.weight"] == [64, 32, 5, 5])
        #expect(s["device.exit.fc.weight"] == [10, 512])
        #expect(s["edge.trunk.conv3.weight"] == [96, 64, 3, 3])
        #expect(s["edge.exit.fc.weight"] == [10, 128])
        #expect(s["cloud.trunk.conv5.weight"] == [64, 96, 3, 3])
        #expect(s["cloud.trunk.fc1.weight"] == [256, 1024])
        #expect(s["cloud.exit.fc.weight"] == [10, 128])
        #expect(Architectures.rationale("b-alexnet")?.contains("dropout") == true)
    }

    @Test func bResNet110Layout() throws {
        let network = try Network(spec: try #require(Architectures.named("b-resnet110")))
        #expect(network.stages.map(\.outputShape) == [[16, 30, 30], [16, 30, 30], [64, 3, 3]])
        let blocks = network.stages.map { s in s.trunk.filter { $0 is ResidualLayer }.count }
        #expect(blocks == [1, 18, 36])
        let trunkConvs = network.stages.flatMap(\.trunk).flattened.filter { $0 is ConvLayer }.count
        #expect(trunkConvs == 1 + 2 * 55)
        let s = shapes(network)
        #expect(s["device.trunk.conv1.weight"] == [16, 3, 3, 3])
        #expect(s["device.trunk.g1b1.bn2.running_var"] == [16])
        #expect(s["device.exit.fc1.weight"] == [3600, 7200])
        #expect(s["edge.exit.block.conv1.weight"] == [16, 16, 3, 3])
        #expect(s["edge.exit.fc.weight"] == [10, 14400])
        #expect(s["cloud.trunk.g2b1.conv1.weight"] == [32, 16, 3, 3])
        #expect(s["cloud.trunk.g3b18.conv2.weight"] == [64, 64, 3, 3])
        #expect(s["cloud.exit.fc.weight"] == [10, 576])
        // The first block of each wider group subsamples and pads its shortcut; the others are identities.
        let cloud = network.stages[2].trunk.compactMap { $0 as? ResidualLayer }
        #expect(cloud.filter { !$0.shortcut.isEmpty }.map(\.name) == ["cloud.trunk.g2b1", "cloud.trunk.g3b1"])
        #expect(cloud[0].shortcut.map { "\(type(of: $0))" } == ["AvgPoolLayer", "PadChannelsLayer"])
        let parameters = network.parameters.reduce(0) { $0 + $1.value.count }
        #expect(parameters > 27_000_000 && parameters < 29_000_000, "\(parameters)")
    }

    /// One joint training step, compiled inference against the layer-by-layer forward pass,
    /// and a save and load that keeps every tensor and every answer.
    @Test(arguments: ["b-alexnet", "b-resnet110"])
    func trainsRunsSavesAndLoads(name: String) throws {
        let spec = try #require(Architectures.named(name))
        let network = try Network(spec: spec)
        network.initialize(seed: 5)
        let x = ModelFixture.randomInput([3, 32, 32], count: 2, seed: 6)
        for p in network.parameters { p.zeroGrad() }
        let (loss, _) = network.jointLossGradients(images: x, labels: [3, 7], exitWeights: [1, 1, 1])
        #expect(loss.isFinite && loss > 0)
        let withGradient = network.parameters.filter { $0.grad.data.contains { $0 != 0 } }.count
        #expect(withGradient == network.parameters.count, "\(name): \(withGradient) of \(network.parameters.count) parameters have a gradient")
        for s in network.stages { for l in s.trunk + s.exit { l.clearCache() } }

        // Compiled inference agrees with the layers (batch norms folded into the convolutions).
        let compiled = CompiledNetwork(network)
        let got = CompiledNetworkTests.compiledOutputs(compiled, x, perSample: false)
        var features = x
        for i in network.stages.indices {
            features = network.trunk(i, features)
            let logits = network.exitLogits(i, features)
            let scale = max(1, features.data.map(abs).max() ?? 1)
            #expect(zip(got.features[i], features.data).allSatisfy { abs($0 - $1) <= 1e-4 * scale }, "\(name) stage \(i)")
            let logitScale = max(1, logits.data.map(abs).max() ?? 1)
            #expect(zip(got.logits[i], logits.data).allSatisfy { abs($0 - $1) <= 1e-3 * logitScale }, "\(name) exit \(i)")
        }

        let dir = try ScratchDirectory()
        try Model.save(network, to: dir.url)
        let loaded = try Model.load(directory: dir.url)
        #expect(loaded.spec == spec)
        #expect(loaded.network.namedTensors == network.namedTensors)
        #expect(CompiledNetworkTests.compiledOutputs(CompiledNetwork(loaded.network), x, perSample: false) == got)
    }
}
