import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The default model b-resnet3: its built-in description, and the shipped model against it.
@Suite struct BResNet3Tests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Counts the residual blocks and batch norms of a layer list, blocks' bodies included.
    static func count(_ layers: [LayerSpec], op: String) -> Int {
        layers.reduce(0) { $0 + ($1.op == op ? 1 : 0) + count(($1.layers ?? []) + ($1.shortcut ?? []), op: op) }
    }

    @Test func shapedForTheTiers() throws {
        let spec = try #require(Architectures.named("b-resnet3"))
        #expect(Architectures.rationale("b-resnet3") != nil)
        let network = try Network(spec: spec)
        #expect(network.stages.map(\.name) == ["device", "edge", "cloud"])
        #expect(network.stages[0].outputShape == [2, 14, 14])
        #expect(network.stages[0].outputShape.reduce(1, *) <= 392, "the device forwards at most 392 values")
        #expect(network.stages[1].inputShape == network.stages[0].outputShape)
        #expect(network.stages[1].outputShape == [32, 4, 4])
        #expect(spec.stages.map { Self.count($0.trunk, op: "residual") } == [0, 1, 2])
        // Every convolution is followed by a batch norm (the blocks' included): 3 + 3 + 5.
        #expect(spec.stages.map { Self.count($0.trunk, op: "batchnorm") } == [3, 3, 5])
        #expect(spec.stages.allSatisfy { Self.count($0.trunk, op: "batchnorm") == Self.count($0.trunk, op: "conv") })
    }

    /// The device stage costs fewer multiply-adds than b-lenet3's, trunk and exit together, counted
    /// from the planned layers: a weight is used once per output position of a convolution, once
    /// per sample in a linear layer.
    @Test func deviceStageIsCheaperThanBLeNet3() throws {
        func deviceMACs(_ name: String) throws -> Int {
            let device = try Network(spec: try #require(Architectures.named(name))).stages[0]
            return (device.trunk + device.exit).flattened.reduce(0) { total, layer in
                switch layer {
                case let conv as ConvLayer: total + conv.weight.value.count * conv.outputShape[1] * conv.outputShape[2]
                case let linear as LinearLayer: total + linear.weight.value.count
                default: total
                }
            }
        }
        let resnet = try deviceMACs("b-resnet3"), lenet = try deviceMACs("b-lenet3")
        #expect(resnet == 198_208)
        #expect(lenet == 273_616)
        #expect(resnet < lenet)
    }

    /// The shipped model is the built-in description trained: the same layers, names and shapes.
    @Test func shippedModelIsTheBuiltInArchitecture() throws {
        let model = try Model.load(directory: Self.root.appendingPathComponent("models/b-resnet3"))
        var shipped = model.spec, builtIn = try #require(Architectures.named("b-resnet3"))
        #expect(shipped.defaults?.thresholds.count == 2)
        shipped.defaults = nil; builtIn.defaults = nil
        #expect(shipped == builtIn)
    }

    /// On the shipped weights, inference with the batch norms folded gives the reference's classes
    /// and, within float rounding, its logits.
    @Test func shippedWeightsFoldedMatchTheReference() throws {
        let model = try Model.load(directory: Self.root.appendingPathComponent("models/b-resnet3"))
        let network = model.network
        let compiled = CompiledNetwork(network)
        #expect(CompiledNetworkTests.affineSteps(compiled) < CompiledNetworkTests.affineSteps(CompiledNetwork(network, foldBatchNorm: false)))
        let input = ModelFixture.randomInput(model.spec.input, count: 8, seed: 5)
        let folded = CompiledNetworkTests.compiledOutputs(compiled, input, perSample: false)
        let reference = CompiledNetworkTests.referenceOutputs(network, input)
        for i in network.stages.indices {
            let scale = max(1, reference.logits[i].map(abs).max() ?? 1)
            #expect(maxDifference(folded.logits[i], reference.logits[i]) <= 1e-3 * scale, "stage \(i)")
            for s in 0..<input.batch {
                let row = { (v: [Float]) in Array(v[s * 10..<(s + 1) * 10]) }
                let a = row(folded.logits[i]), b = row(reference.logits[i])
                if (a.max()! - a.sorted()[8]) > 1e-3 * scale {
                    #expect(a.firstIndex(of: a.max()!) == b.firstIndex(of: b.max()!), "stage \(i) sample \(s)")
                }
            }
        }
    }
}
