import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

extension ModelFixture {
    static func bn(_ name: String, _ momentum: Float? = nil) -> LayerSpec {
        LayerSpec(op: "batchnorm", name: name, momentum: momentum)
    }

    /// Residual blocks with identity shortcuts: conv · BN · ReLU · conv · BN plus the input,
    /// then a block whose body starts with a ReLU and ends in a 1×1 convolution.
    static func residualIdentity(momentum: Float? = nil) -> ModelSpec {
        ModelSpec(name: "res-identity", input: [2, 5, 5], classes: 3, stages: [
            StageSpec(name: "a", trunk: [
                .conv("c0", out: 3, kernel: 3, pad: 1),
                .residual("r1", [.conv("r1.c1", out: 3, kernel: 3, pad: 1), bn("r1.bn1", momentum), .relu,
                                 .conv("r1.c2", out: 3, kernel: 3, pad: 1), bn("r1.bn2", momentum)]),
                .relu,
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 3)])),
            StageSpec(name: "b", trunk: [.residual("r2", [.relu, .conv("r2.c", out: 3, kernel: 1)])],
                      exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc", out: 3)])),
        ])
    }

    /// A block with a projection shortcut (1×1 convolution, stride 2, and a batch norm) beside a
    /// stride-2 body; then one with BranchyNet's zero-padded shortcut (average pooling 1, stride
    /// 2, zero channels in front) whose body holds a nested block and a local response normalisation.
    static func residualProjection(momentum: Float? = nil) -> ModelSpec {
        ModelSpec(name: "res-projection", input: [2, 6, 6], classes: 3, stages: [
            StageSpec(name: "a", trunk: [
                .residual("r1", [LayerSpec(op: "conv", name: "r1.c1", out: 4, kernel: 3, stride: 2, pad: 1), bn("r1.bn1", momentum), .relu,
                                 .conv("r1.c2", out: 4, kernel: 3, pad: 1), bn("r1.bn2", momentum)],
                          shortcut: [LayerSpec(op: "conv", name: "r1.proj", out: 4, kernel: 1, stride: 2), bn("r1.bnp", momentum)]),
                .relu,
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 3)])),
            StageSpec(name: "b", trunk: [
                .residual("r2", [LayerSpec(op: "conv", name: "r2.c1", out: 6, kernel: 3, stride: 2, pad: 1), .relu,
                                 .residual("r2.inner", [.conv("r2.inner.c", out: 6, kernel: 3, pad: 1)]),
                                 .lrn(size: 3, alpha: 0.5, beta: 0.75, k: 1)],
                          shortcut: [.avgPool(1, stride: 2), .padChannels(out: 6)]),
                .relu,
            ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc", out: 3)])),
        ])
    }
}

/// Residual blocks, zero-padded channels and local response normalisation: planning, the
/// backward passes against finite differences, and the description's checks.
@Suite struct ResidualTests {
    @Test func shapesAndNames() throws {
        let network = try Network(spec: ModelFixture.residualProjection())
        #expect(network.stages.map(\.outputShape) == [[4, 3, 3], [6, 2, 2]])
        let names = Set(network.expectedTensors.map(\.name))
        // Layers inside blocks are named as if they stood in the trunk.
        for name in ["a.trunk.r1.c1.weight", "a.trunk.r1.proj.weight", "a.trunk.r1.bnp.running_var", "b.trunk.r2.inner.c.bias"] {
            #expect(names.contains(name), "\(name)")
        }
        #expect(network.expectedTensors.count == 26)
    }

    @Test func identityShortcutGradients() throws {
        let (mismatches, checked, worst) = try GradientCheckTests.check(ModelFixture.residualIdentity(), seed: 30, weights: [0.8, 1.2])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
        #expect(checked["a.trunk.r1.c1.weight"] == 81)
        #expect(checked["a.trunk.c0.weight"] == 54)
        #expect(checked["b.trunk.r2.c.weight"] == 9)
    }

    @Test func projectionAndPaddedShortcutGradients() throws {
        let (mismatches, checked, worst) = try GradientCheckTests.check(ModelFixture.residualProjection(), seed: 32, weights: [1, 1])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
        #expect(checked["a.trunk.r1.proj.weight"] == 8)
        #expect(checked["a.trunk.r1.bnp.weight"] == 4)
        #expect(checked["b.trunk.r2.inner.c.weight"] == 324)
    }

    /// The same blocks with batch norms trained on batch statistics (as the built-in ResNet is).
    @Test(arguments: [false, true])
    func gradientsWithBatchStatistics(projection: Bool) throws {
        let spec = projection ? ModelFixture.residualProjection(momentum: 0.1) : ModelFixture.residualIdentity(momentum: 0.1)
        // A bias right before a batch norm on batch statistics has no effect on the loss: its gradient
        // is zero up to rounding, which the float32 forward pass shows as about 1e-5 in the quotient.
        let (mismatches, _, worst) = try GradientCheckTests.check(spec, seed: 33, weights: [1, 0.5], training: true, absolute: 1e-4)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(worst < 1e-2)
    }

    @Test func everyParameterGetsAGradient() throws {
        for spec in [ModelFixture.residualIdentity(), ModelFixture.residualProjection()] {
            let network = try ModelFixture.randomNetwork(spec, seed: 34)
            let x = ModelFixture.randomInput(spec.input, count: 4, seed: 35)
            GradientCheckTests.forwardBackward(network, x, [0, 1, 2, 1], [1, 1])
            for p in network.parameters {
                #expect(p.grad.data.contains { $0 != 0 }, "\(spec.name): \(p.name) has an all-zero gradient")
            }
        }
    }

    /// The input gradient of a block is the sum of both branches' (checked on the data, with
    /// the sum of the outputs as the loss).
    @Test func inputGradientAgainstFiniteDifferences() throws {
        let network = try ModelFixture.randomNetwork(ModelFixture.residualProjection(), seed: 36)
        for (index, layer) in network.stages.flatMap(\.trunk).enumerated() {
            guard let block = layer as? ResidualLayer else { continue }
            var x = ModelFixture.randomInput(block.inputShape, count: 2, seed: 37 + UInt64(index))
            let y = block.forward(x, training: true)
            let dy = ModelFixture.randomInput(Array(y.shape.dropFirst()), count: 2, seed: 40)
            let dx = try #require(block.backward(dy, needInputGradient: true))
            func loss() -> Double {
                let out = block.forward(x, training: false)
                return zip(out.data, dy.data).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            }
            let eps: Float = 1e-3
            for i in 0..<x.count {
                let v = x.data[i]
                x.data[i] = v + eps; let up = loss()
                x.data[i] = v - eps; let down = loss()
                x.data[i] = v
                let numeric = (up - down) / Double(2 * eps)
                #expect(abs(numeric - Double(dx.data[i])) <= 1e-2 * max(1, abs(numeric)), "\(block.name) x[\(i)]")
            }
        }
    }

    /// LRN's arithmetic against a direct evaluation of its formula in Double.
    @Test func localResponseNormalisationFormula() {
        let norm = LocalResponseNorm(channels: 5, plane: 4, size: 3, alpha: 0.3, beta: 0.75, k: 2)
        let x = ModelFixture.randomInput([5, 2, 2], count: 2, seed: 41)
        let (y, _) = norm.forward(x)
        for s in 0..<2 { for c in 0..<5 { for i in 0..<4 {
            var sum = 0.0
            for j in max(0, c - 1)...min(4, c + 1) { let v = Double(x.data[(s * 5 + j) * 4 + i]); sum += v * v }
            let e = (s * 5 + c) * 4 + i
            let expected = Double(x.data[e]) * pow(2 + 0.3 * sum, -0.75)
            #expect(abs(Double(y.data[e]) - expected) < 1e-6)
        } } }
    }

    /// LRN's input gradient against central differences of Σ y · dy.
    @Test func localResponseNormalisationGradient() {
        let norm = LocalResponseNorm(channels: 4, plane: 6, size: 3, alpha: 0.4, beta: 0.75, k: 1.5)
        var x = ModelFixture.randomInput([4, 2, 3], count: 2, seed: 42)
        let dy = ModelFixture.randomInput([4, 2, 3], count: 2, seed: 43)
        let (y, scale) = norm.forward(x)
        let dx = norm.backward(x: x, y: y, scale: scale, dy: dy)
        func loss() -> Double { zip(norm.forward(x).y.data, dy.data).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        let eps: Float = 1e-3
        for i in 0..<x.count {
            let v = x.data[i]
            x.data[i] = v + eps; let up = loss()
            x.data[i] = v - eps; let down = loss()
            x.data[i] = v
            let numeric = (up - down) / Double(2 * eps)
            #expect(abs(numeric - Double(dx.data[i])) <= 1e-3 * max(1, abs(numeric)), "x[\(i)]: \(numeric) vs \(dx.data[i])")
        }
    }

    // MARK: The description's checks

    func oneStage(_ trunk: [LayerSpec], input: [Int] = [2, 6, 6]) -> ModelSpec {
        ModelSpec(name: "r", input: input, classes: 3, stages: [
            StageSpec(name: "a", trunk: trunk, exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 3)])),
        ])
    }

    func expectError(_ spec: ModelSpec, at location: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = ModelFixture.buildError(spec) else {
            Issue.record("expected a ModelError at \(location)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.location == location, sourceLocation: sourceLocation)
        #expect(error.reason == reason, sourceLocation: sourceLocation)
    }

    @Test func branchesOfDifferentShapes() {
        expectError(oneStage([.residual("blk", [.conv("c", out: 4, kernel: 3, pad: 1)])]), at: "stages[0].trunk[0]",
                    "residual block 'blk': the body gives [4, 6, 6] but its input (identity shortcut) gives [2, 6, 6]; both must "
                    + "have the same shape (add a 'shortcut' that maps the input to the body's shape)")
        expectError(oneStage([.residual("blk", [LayerSpec(op: "conv", name: "c", out: 2, kernel: 3, stride: 2, pad: 1)],
                                        shortcut: [.padChannels(out: 2)])]), at: "stages[0].trunk[0]",
                    "residual block 'blk': the body gives [2, 3, 3] but its shortcut gives [2, 6, 6]; both must have the same shape")
    }

    @Test func namesAreUniqueAcrossBlocks() {
        expectError(oneStage([.conv("c", out: 2, kernel: 1), .residual("blk", [.conv("c", out: 2, kernel: 1)])]),
                    at: "stages[0].trunk[1].layers[0].name",
                    "layer name 'c' used twice in stages[0].trunk (names must be unique across its residual blocks too)")
        expectError(oneStage([.residual("blk", [.relu]), .residual("blk", [.relu])]), at: "stages[0].trunk[1].name",
                    "layer name 'blk' used twice in stages[0].trunk")
        expectError(oneStage([LayerSpec(op: "residual", layers: [.relu])]), at: "stages[0].trunk[0].name", "'residual' needs a 'name'")
        // The exit is a scope of its own, as before.
        var spec = oneStage([.residual("blk", [.conv("fc2", out: 2, kernel: 1)])])
        spec.stages[0].exit.layers = [.flatten, .linear("fc2", out: 3)]
        #expect(ModelFixture.buildError(spec) == nil)
    }

    @Test func blocksNeedABody() {
        expectError(oneStage([.residual("blk", [])]), at: "stages[0].trunk[0].layers", "residual block 'blk' needs at least one layer in 'layers'")
        expectError(oneStage([LayerSpec(op: "residual", name: "blk")]), at: "stages[0].trunk[0].layers",
                    "residual block 'blk' needs at least one layer in 'layers'")
    }

    @Test func nestingIsLimited() {
        func nested(_ depth: Int) -> LayerSpec {
            depth == 1 ? .residual("b1", [.relu]) : .residual("b\(depth)", [nested(depth - 1)])
        }
        #expect(ModelFixture.buildError(oneStage([nested(ModelLimits.maxNesting)])) == nil)
        let location = "stages[0].trunk[0]" + String(repeating: ".layers[0]", count: ModelLimits.maxNesting)
        expectError(oneStage([nested(ModelLimits.maxNesting + 1)]), at: location,
                    "residual block 'b1' is nested 9 deep, more than the limit of 8")
    }

    @Test func newKeysBelongToTheirOps() {
        expectError(oneStage([LayerSpec(op: "conv", name: "c", out: 2, kernel: 1, layers: [.relu])]), at: "stages[0].trunk[0].layers",
                    "'layers' belongs to 'residual' layers only, not to 'conv'")
        expectError(oneStage([LayerSpec(op: "relu", shortcut: [])]), at: "stages[0].trunk[0].shortcut",
                    "'shortcut' belongs to 'residual' layers only, not to 'relu'")
        expectError(oneStage([LayerSpec(op: "batchnorm", name: "bn", k: 1)]), at: "stages[0].trunk[0].k",
                    "'k' belongs to 'lrn' layers only, not to 'batchnorm'")
    }

    @Test func lrnAndPaddingChecks() {
        expectError(oneStage([.lrn(size: 4, alpha: 1, beta: 1, k: 1)]), at: "stages[0].trunk[0].size",
                    "the window must be odd (centred on each channel), got 4")
        expectError(oneStage([.lrn(size: 3, alpha: 1, beta: 1, k: 0)]), at: "stages[0].trunk[0].k", "must be > 0, got 0.0")
        expectError(oneStage([.padChannels(out: 1)]), at: "stages[0].trunk[0].out", "1 is fewer than the input's 2 channels")
        expectError(oneStage([LayerSpec(op: "padchannels", out: 4, pad: 3)]), at: "stages[0].trunk[0].pad",
                    "3 zero channels in front do not fit: 2 channels padded to 4 leave 2")
        expectError(oneStage([.flatten, .padChannels(out: 4)]), at: "stages[0].trunk[1]", "'padchannels' needs a (C, H, W) input, got [72]")
    }

    @Test func padChannelsPlacesTheInput() throws {
        let network = try Network(spec: oneStage([LayerSpec(op: "padchannels", out: 5, pad: 1)], input: [2, 1, 2]))
        let layer = network.stages[0].trunk[0]
        let y = layer.forward(Tensor(shape: [1, 2, 1, 2], data: [1, 2, 3, 4]), training: true)
        #expect(y.data == [0, 0, 1, 2, 3, 4, 0, 0, 0, 0])
        #expect(layer.backward(Tensor(shape: [1, 5, 1, 2], data: (0..<10).map(Float.init)), needInputGradient: true)?.data == [2, 3, 4, 5])
        // Without `pad`, every new channel goes in front.
        let front = try Network(spec: oneStage([.padChannels(out: 3)], input: [2, 1, 1])).stages[0].trunk[0]
        #expect(front.forward(Tensor(shape: [1, 2, 1, 1], data: [7, 8]), training: false).data == [0, 7, 8])
    }

    // MARK: model.json

    /// Reading `text` as model.json fails with exactly `description` (after the file's path).
    func expectFileError(_ trunk: String, _ description: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try ScratchDirectory()
        let url = dir.path("model.json")
        try Data("""
            {"name": "r", "input": [2, 6, 6], "classes": 3, "stages": [
              {"name": "a", "trunk": \(trunk), "exit": {"name": "e", "layers": [{"op": "flatten"}, {"op": "linear", "name": "fc", "out": 3}]}}
            ]}
            """.utf8).write(to: url)
        do {
            _ = try Network(spec: try Model.readSpec(url), file: url.path)
            Issue.record("reading succeeded", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)" == "\(url.path): \(description)", sourceLocation: sourceLocation)
        }
    }

    @Test func modelFilesWithBlocks() throws {
        let dir = try ScratchDirectory()
        let url = dir.path("model.json")
        try Data("""
            {"name": "r", "input": [2, 6, 6], "classes": 3, "stages": [
              {"name": "a", "trunk": [
                 {"op": "residual", "name": "b1", "layers": [{"op": "conv", "name": "c1", "out": 4, "kernel": 3, "stride": 2, "pad": 1}],
                  "shortcut": [{"op": "avgpool", "kernel": 1, "stride": 2}, {"op": "padchannels", "out": 4}]},
                 {"op": "relu"}, {"op": "lrn", "size": 3, "alpha": 5e-5, "beta": 0.75, "k": 2}],
               "exit": {"name": "e", "layers": [{"op": "flatten"}, {"op": "linear", "name": "fc", "out": 3}]}}
            ]}
            """.utf8).write(to: url)
        let spec = try Model.readSpec(url)
        #expect(try Network(spec: spec).stages[0].outputShape == [4, 3, 3])
        // Encoding and decoding give the same description.
        #expect(try StrictJSONDecoder.decode(ModelSpec.self, from: JSONEncoder().encode(spec)) == spec)

        try expectFileError(#"[{"op": "conv", "name": "c", "out": 2, "kernel": 1, "layers": []}]"#,
                            "stages[0].trunk[0].layers: 'layers' belongs to 'residual' layers only, not to 'conv'")
        try expectFileError(#"[{"op": "relu", "shortcut": [{"op": "relu"}]}]"#,
                            "stages[0].trunk[0].shortcut: 'shortcut' belongs to 'residual' layers only, not to 'relu'")
        try expectFileError(#"[{"op": "residual", "name": "b", "layers": [{"op": "relu", "k": 1}]}]"#,
                            "stages[0].trunk[0].layers[0].k: 'k' belongs to 'lrn' layers only, not to 'relu'")
        try expectFileError(#"[{"op": "residual", "name": "b", "layers": [{"op": "conv", "name": "c", "out": "two", "kernel": 1}]}]"#,
                            #"stages[0].trunk[0].layers[0].out: expected an integer, got "two""#)
        try expectFileError(#"[{"op": "residual", "name": "b", "layers": {"op": "relu"}}]"#,
                            "stages[0].trunk[0].layers: expected an array, got an object")
    }

    /// A description without the new ops encodes exactly as before: no new keys.
    @Test func oldDescriptionsEncodeAsBefore() throws {
        for name in ["b-lenet", "b-lenet3", "b-lenet3-bin"] {
            let spec = try #require(Architectures.named(name))
            let text = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            for key in ["shortcut", "size", "alpha", "beta", "\"k\""] { #expect(!text.contains(key), "\(name): \(key)") }
        }
    }
}
