import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

@Suite struct NetworkTests {
    func shapes(_ network: Network) -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: network.expectedTensors.map { ($0.name, $0.shape) })
    }

    // MARK: Built-in architectures

    @Test func bLeNetHasThePaperFeatureCounts() throws {
        let network = try Network(spec: Architectures.bLeNet)
        let s = shapes(network)
        // Exit 1 sees 10 × 8 × 8 = 640 features; the final exit 20 × 6 × 6 = 720.
        #expect(s["device.exit.fc.weight"] == [10, 640])
        #expect(s["cloud.exit.fc1.weight"] == [84, 720])
        #expect(s["cloud.exit.fc2.weight"] == [10, 84])
        #expect(s["device.trunk.conv1.weight"] == [5, 1, 5, 5])
        #expect(s["device.exit.conv.weight"] == [10, 5, 3, 3])
        #expect(s["cloud.trunk.conv2.weight"] == [10, 5, 5, 5])
        #expect(s["cloud.trunk.conv3.weight"] == [20, 10, 5, 5])
        #expect(network.stages.map(\.name) == ["device", "cloud"])
        #expect(network.stages.map(\.exitName) == ["exit1", "final"])
        #expect(network.stages[0].inputShape == [1, 28, 28])
        #expect(network.stages[0].outputShape == [5, 30, 30])
        #expect(network.stages[1].outputShape == [20, 6, 6])
        // Every weighted layer has a bias; no batch norm, so parameters and tensors coincide.
        #expect(network.expectedTensors.count == 14)
        #expect(network.parameters.count == 14)
    }

    @Test func bLeNet3StageOutputs() throws {
        let network = try Network(spec: Architectures.bLeNet3)
        #expect(network.stages.map(\.name) == ["device", "edge", "cloud"])
        #expect(network.stages.map(\.outputShape) == [[8, 7, 7], [32, 4, 4], [64, 2, 2]])
        #expect(network.stages.map(\.inputShape) == [[1, 28, 28], [8, 7, 7], [32, 4, 4]])
        #expect(network.stages[0].outputShape.reduce(1, *) == 392)
        let s = shapes(network)
        #expect(s["device.exit.fc.weight"] == [10, 392])
        #expect(s["edge.exit.fc.weight"] == [10, 512])
        #expect(s["cloud.exit.fc1.weight"] == [256, 256])
        #expect(s["cloud.exit.fc2.weight"] == [10, 256])
        #expect(s["cloud.exit.fc2.bias"] == [10])

        // Running the stages end to end gives these shapes and 10 logits per exit.
        network.initialize(seed: 3)
        var x = ModelFixture.randomInput([1, 28, 28], count: 2, seed: 1)
        for i in 0..<3 {
            x = network.trunk(i, x)
            #expect(Array(x.shape.dropFirst()) == network.stages[i].outputShape)
            #expect(network.exitLogits(i, x).shape == [2, 10])
        }
    }

    @Test func architecturesByName() {
        #expect(Architectures.names.map { Architectures.named($0)?.name } == Architectures.names)
        #expect(Architectures.named("resnet") == nil)
    }

    @Test func parameterOrderIsStageByStageTrunkBeforeExit() throws {
        let network = try Network(spec: ModelFixture.tiny)
        #expect(network.parameters.map(\.name) == [
            "a.trunk.c1.weight", "a.trunk.c1.bias", "a.exit.fc.weight", "a.exit.fc.bias",
            "b.trunk.c2.weight", "b.trunk.c2.bias", "b.exit.fc1.weight", "b.exit.fc1.bias",
            "b.exit.fc2.weight", "b.exit.fc2.bias",
        ])
        // The ceil-mode pool turns 6×6 into 3×3 (floor mode would give 2×2).
        #expect(network.stages[0].outputShape == [3, 3, 3])
    }

    @Test func batchNormStatisticsAreTensorsButNotParameters() throws {
        let network = try Network(spec: ModelFixture.tinyBatchNorm)
        let s = shapes(network)
        #expect(s["a.trunk.bn1.weight"] == [3])
        #expect(s["a.trunk.bn1.bias"] == [3])
        #expect(s["a.trunk.bn1.running_mean"] == [3])
        #expect(s["a.trunk.bn1.running_var"] == [3])
        #expect(s["b.exit.bn3.running_var"] == [5])
        #expect(s["b.trunk.c2.bias"] == nil) // bias: false
        #expect(!network.parameters.contains { $0.name.hasSuffix("running_mean") })
        #expect(Set(network.namedTensors.keys) == Set(s.keys))
        // Fresh statistics are the identity: mean 0, variance 1.
        #expect(network.namedTensors["a.trunk.bn1.running_var"]!.data == [1, 1, 1])
    }

    @Test func assignAndInitialize() throws {
        let network = try Network(spec: ModelFixture.tinyBatchNorm)
        #expect(network.assign("a.trunk.bn1.running_mean", Tensor(shape: [3], data: [1, 2, 3])))
        #expect(network.namedTensors["a.trunk.bn1.running_mean"]!.data == [1, 2, 3])
        #expect(!network.assign("a.trunk.nothing", Tensor(shape: [1])))

        network.initialize(seed: 9)
        let w = network.namedTensors["b.exit.fc1.weight"]!
        let bound = (6 / Float(16)).squareRoot()
        #expect(w.data.allSatisfy { abs($0) <= bound })
        #expect(Set(w.data).count == w.count)
        #expect(network.namedTensors["b.exit.fc1.bias"]!.data.allSatisfy { $0 == 0 })
        #expect(network.namedTensors["a.trunk.bn1.weight"]!.data == [1, 1, 1])

        let again = try Network(spec: ModelFixture.tinyBatchNorm)
        again.initialize(seed: 9)
        #expect(again.namedTensors == network.namedTensors.merging(["a.trunk.bn1.running_mean": Tensor(shape: [3])]) { $1 })
    }

    @Test func sharedNetworkAnswersAlikeOnConcurrentTasks() async throws {
        // A loaded network is shared read-only by the tiers: inference passes on many tasks at
        // once write nothing in it and give the answers a single caller gets.
        let network = try ModelFixture.randomNetwork(ModelFixture.tinyBatchNorm, seed: 9)
        let x = ModelFixture.randomInput([1, 6, 6], count: 4, seed: 2)
        let infer: @Sendable () -> [Tensor] = {
            (0..<2).map { i in network.exitLogits(i, (0...i).reduce(x) { network.trunk($1, $0) }) }
        }
        let expected = infer()
        let answers = await withTaskGroup(of: [Tensor].self) { group in
            for _ in 0..<8 { group.addTask(operation: infer) }
            return await group.reduce(into: [[Tensor]]()) { $0.append($1) }
        }
        #expect(answers.count == 8)
        #expect(answers.allSatisfy { $0 == expected })
    }

    // MARK: Errors

    /// Checks that building `spec` fails at `location` with a reason containing `reason`,
    /// and that the description names the file, the location and the reason.
    func expectError(_ spec: ModelSpec, at location: String, _ reason: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let file = "models/broken/model.json"
        guard let error = ModelFixture.buildError(spec, file: file) else {
            Issue.record("expected a ModelError at \(location)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.file == file, sourceLocation: sourceLocation)
        #expect(error.location == location, sourceLocation: sourceLocation)
        #expect(error.reason.contains(reason), "reason: \(error.reason)", sourceLocation: sourceLocation)
        #expect(error.description == "\(file): \(location): \(error.reason)", sourceLocation: sourceLocation)
    }

    /// `tiny` with stage `stage`'s trunk replaced.
    func withTrunk(_ stage: Int, _ trunk: [LayerSpec]) -> ModelSpec {
        var spec = ModelFixture.tiny
        spec.stages[stage].trunk = trunk
        return spec
    }

    @Test func unknownOp() {
        expectError(withTrunk(1, [.relu, LayerSpec(op: "dropout")]), at: "stages[1].trunk[1].op", "unknown op 'dropout'")
    }

    @Test func missingOut() {
        expectError(withTrunk(0, [LayerSpec(op: "conv", name: "c1", kernel: 3)]), at: "stages[0].trunk[0].out", "'conv' needs 'out'")
        var spec = ModelFixture.tiny
        spec.stages[1].exit.layers[1] = LayerSpec(op: "linear", name: "fc1")
        expectError(spec, at: "stages[1].exit.layers[1].out", "'linear' needs 'out'")
        expectError(withTrunk(0, [LayerSpec(op: "conv", name: "c1", out: 0, kernel: 3)]), at: "stages[0].trunk[0].out", "must be >= 1, got 0")
    }

    @Test func missingKernel() {
        expectError(withTrunk(0, [LayerSpec(op: "conv", name: "c1", out: 3)]), at: "stages[0].trunk[0].kernel", "'conv' needs 'kernel'")
        expectError(withTrunk(0, [.relu, LayerSpec(op: "maxpool")]), at: "stages[0].trunk[1].kernel", "'maxpool' needs 'kernel'")
        expectError(withTrunk(0, [LayerSpec(op: "avgpool", kernel: 2, pad: -1)]), at: "stages[0].trunk[0].pad", "must be >= 0, got -1")
        expectError(withTrunk(0, [LayerSpec(op: "maxpool", kernel: 2, pad: 2)]), at: "stages[0].trunk[0].pad", "at most half the kernel")
    }

    @Test func missingName() {
        expectError(withTrunk(0, [LayerSpec(op: "conv", out: 3, kernel: 3)]), at: "stages[0].trunk[0].name", "needs a 'name'")
    }

    @Test func linearWithoutFlatten() {
        var spec = ModelFixture.tiny
        spec.stages[0].exit.layers = [.linear("fc", out: 3)]
        expectError(spec, at: "stages[0].exit.layers[0]", "add {\"op\": \"flatten\"} before it")
    }

    @Test func imageLayerOnFlatInput() {
        var spec = ModelFixture.tiny
        spec.stages[0].exit.layers = [.flatten, .maxPool(2), .linear("fc", out: 3)]
        expectError(spec, at: "stages[0].exit.layers[1]", "'maxpool' needs a (C, H, W) input, got [27]")
    }

    @Test func exitMustEndInClassLogits() {
        var spec = ModelFixture.tiny
        spec.stages[1].exit.layers = [.flatten, .linear("fc1", out: 5)]
        expectError(spec, at: "stages[1].exit", "exit 'exit-b' must end in 3 logits, but produces shape [5]")
        spec.stages[1].exit.layers = [.relu]
        expectError(spec, at: "stages[1].exit", "produces shape [4, 2, 2]")
    }

    @Test func duplicateStageName() {
        var spec = ModelFixture.tiny
        spec.stages[1].name = "a"
        expectError(spec, at: "stages[1].name", "stage name 'a' is empty or used twice")
        spec.stages[1].name = ""
        expectError(spec, at: "stages[1].name", "is empty or used twice")
    }

    @Test func duplicateLayerName() {
        expectError(withTrunk(0, [.conv("c1", out: 3, kernel: 3, pad: 1), .relu, .conv("c1", out: 3, kernel: 3, pad: 1)]),
                    at: "stages[0].trunk[2].name", "layer name 'c1' used twice in stages[0].trunk")
        // The same name in a trunk and an exit, or in two stages, is fine: tensor names carry the prefix.
        var spec = ModelFixture.tiny
        spec.stages[1].exit.layers[1].name = "c2"
        spec.stages[1].trunk[0].name = "c1"
        #expect(ModelFixture.buildError(spec) == nil)
    }

    @Test func kernelTooBigForInput() throws {
        expectError(withTrunk(0, [.conv("c1", out: 3, kernel: 7)]), at: "stages[0].trunk[0]", "kernel 7 does not fit input [1, 6, 6] with pad 0")
        expectError(withTrunk(1, [.conv("c2", out: 3, kernel: 4)]), at: "stages[1].trunk[0]", "kernel 4 does not fit input [3, 3, 3]")
        expectError(withTrunk(1, [.maxPool(4)]), at: "stages[1].trunk[0]", "window 4 does not fit input [3, 3, 3]")
        // A stride larger than one must not round a negative span up to one output.
        expectError(withTrunk(0, [.conv("c1", out: 3, kernel: 7, stride: 2)]), at: "stages[0].trunk[0]", "kernel 7 does not fit input [1, 6, 6]")
        expectError(withTrunk(1, [LayerSpec(op: "avgpool", kernel: 5, stride: 2, ceil: true)]), at: "stages[1].trunk[0]", "window 5 does not fit input [3, 3, 3]")
        // A ceil-mode window may overhang the input as long as it starts inside it.
        var overhang = withTrunk(1, [LayerSpec(op: "maxpool", kernel: 4, ceil: true)])
        overhang.stages[1].exit.layers = [.flatten, .linear("fc", out: 3)]
        #expect(ModelFixture.buildError(overhang) == nil)
        #expect(try Network(spec: overhang).stages[1].outputShape == [3, 1, 1])
    }

    @Test func badInputShape() {
        for input in [[1, 6], [1, 6, 6, 1], [0, 6, 6], [1, -6, 6]] {
            var spec = ModelFixture.tiny
            spec.input = input
            expectError(spec, at: "input", "expected [channels, height, width] with positive sizes, got \(input)")
        }
    }

    @Test func tooFewClasses() {
        var spec = ModelFixture.tiny
        spec.classes = 1
        expectError(spec, at: "classes", "need at least 2 classes, got 1")
    }

    @Test func noStages() {
        var spec = ModelFixture.tiny
        spec.stages = []
        expectError(spec, at: "stages", "at least one stage")
    }

    @Test func defaultThresholds() {
        var spec = ModelFixture.tiny
        spec.defaults = .init(thresholds: [0.1, 0.2])
        expectError(spec, at: "defaults.thresholds", "need 1 thresholds (one per exit but the last), got 2")
        spec.defaults = .init(thresholds: [])
        expectError(spec, at: "defaults.thresholds", "got 0")
        spec.defaults = .init(thresholds: [-0.5])
        expectError(spec, at: "defaults.thresholds[0]", "finite and >= 0")
        spec.defaults = .init(thresholds: [.nan])
        expectError(spec, at: "defaults.thresholds[0]", "finite and >= 0")

        var three = Architectures.bLeNet3
        three.defaults = .init(thresholds: [0.3, -1], codec: "int8")
        expectError(three, at: "defaults.thresholds[1]", "finite and >= 0")
        three.defaults = .init(thresholds: [0.3, 0], codec: "int8")
        #expect(ModelFixture.buildError(three) == nil)
    }
}
