import BranchyModel
@testable import BranchyNode
import BranchyTensor
import BranchyTopology
import BranchyTransport
import Foundation
import Testing

@Suite struct StageRunnerTests {
    /// A context for one node hosting `stages`, built in memory (no TLS files are read).
    static func context(_ stages: [String], thresholds: [Float], model: Model,
                        role: BranchyTopology.NodeRole = .edge) throws -> NodeContext {
        let nowhere = URL(fileURLWithPath: "/nonexistent")
        let tls = TLSFiles(ca: nowhere.appendingPathComponent("ca.pem"), cert: nowhere.appendingPathComponent("n.pem"),
                           key: nowhere.appendingPathComponent("n-key.pem"))
        let config = NodeConfig(name: "n", role: role, stages: stages, thresholds: thresholds, tls: tls)
        let topology = Topology(fileURL: nowhere.appendingPathComponent("t.yaml"), modelDirectory: model.directory, nodes: [config])
        return try NodeContext(topology: topology, config: config, model: model)
    }

    static func model() throws -> Model { try Model.load(directory: try Fixture.shared().modelDirectory) }

    static let samples = 0..<20

    @Test func zeroThresholdsForwardEverySampleWithTheLastHostedExitAsBest() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        for stages in [["device"], ["device", "edge"]] {
            let runner = StageRunner(context: try Self.context(stages, thresholds: stages.map { _ in 0 }, model: model))
            for i in Self.samples {
                let x = fixture.input(i)
                var features = x
                for s in 0..<stages.count { features = net.trunk(s, features) }
                let lastHosted = stages.count - 1
                guard case .forward(let sent, let next, let best, let passed) = runner.run(x) else {
                    Issue.record("\(stages) sample \(i): exited with thresholds 0")
                    continue
                }
                #expect(next == stages.count)
                #expect(sent.shape == features.shape)
                #expect(sent.data == features.data)
                #expect(best.exit == lastHosted)
                #expect(best.output == net.classify(exit: lastHosted, features: features)[0])
                // Every hosted exit's entropy, in order.
                var h = x
                let want = (0..<stages.count).map { s -> Float in h = net.trunk(s, h); return net.classify(exit: s, features: h)[0].entropy }
                #expect(passed == want)
            }
        }
    }

    @Test func hugeThresholdLetsTheFirstExitTakeEverything() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let runner = StageRunner(context: try Self.context(["device", "edge"], thresholds: [1e6, 1e6], model: model))
        for i in Self.samples {
            let x = fixture.input(i)
            guard case .exited(let exit, let out, let passed) = runner.run(x) else {
                Issue.record("sample \(i) was forwarded")
                continue
            }
            #expect(exit == 0 && passed.isEmpty)
            #expect(out == model.network.classify(exit: 0, features: model.network.trunk(0, x))[0])
        }
    }

    @Test func nodeHostingTwoStagesRunsBoth() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        let runner = StageRunner(context: try Self.context(["device", "edge"], thresholds: [0, 1e6], model: model))
        #expect(runner.stageIndices == [0, 1])
        #expect(runner.inputShape == [1, 28, 28])
        for i in Self.samples {
            let x = fixture.input(i)
            guard case .exited(let exit, let out, let passed) = runner.run(x) else {
                Issue.record("sample \(i) was forwarded")
                continue
            }
            #expect(exit == 1)
            // No codec between stages on one node: the second stage sees the first's float features.
            #expect(out == net.classify(exit: 1, features: net.trunk(1, net.trunk(0, x)))[0])
            // The exit passed on this node: its entropy comes with the answer.
            #expect(passed == [net.classify(exit: 0, features: net.trunk(0, x))[0].entropy])
        }
    }

    @Test func probabilitiesWhenAskedAreTheSoftmaxOfTheAnsweringExitAlone() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        let runner = StageRunner(context: try Self.context(["device", "edge"], thresholds: [0.3, 0.3], model: model, role: .edge))
        let inputs = Self.samples.map { fixture.input($0) }
        let batch = runner.run(batch: inputs, probabilities: inputs.indices.map { $0 % 2 == 0 })
        for (i, x) in inputs.enumerated() {
            let one = runner.run(x, probabilities: true)
            let (exit, out): (Int, ExitOutput)
            switch one {
            case .exited(let e, let o, _): (exit, out) = (e, o)
            case .forward(_, _, let best, _): (exit, out) = best
            }
            var features = x
            for s in 0...exit { features = net.trunk(s, features) }
            let softmax = Softmax.forward(net.exitLogits(exit, features)).data
            let p = try #require(out.probabilities)
            #expect(p.count == softmax.count)
            for (a, b) in zip(p, softmax) { #expect(abs(a - b) <= 1e-6) }
            #expect(p.indices.max { p[$0] < p[$1] } == out.predicted)
            #expect(p[out.predicted] == out.confidence)
            // In a batch, only the samples that asked carry them; the rest of the answer is the same.
            let asked: ExitOutput
            switch batch[i] {
            case .exited(_, let o, _): asked = o
            case .forward(_, _, let best, _): asked = best.output
            }
            #expect((asked.probabilities != nil) == (i % 2 == 0))
            #expect(asked.predicted == out.predicted && asked.entropy == out.entropy)
            if case .exited = runner.run(x) { } else if case .exited = one { Issue.record("sample \(i): probabilities changed the decision") }
        }
    }

    @Test func aSamplesOwnThresholdsReplaceTheNodesInABatchAndAlone() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        // The node forwards everything; samples with their own huge thresholds leave at once.
        let runner = StageRunner(context: try Self.context(["device", "edge"], thresholds: [0, 0], model: model))
        let takeAll = runner.policy.overriding([0: 1e6])
        let inputs = Self.samples.map { fixture.input($0) }
        let policies: [ExitPolicy?] = Self.samples.map { $0 % 2 == 0 ? takeAll : nil }
        let outcomes = runner.run(batch: inputs, policies: policies)
        for (i, outcome) in outcomes.enumerated() {
            switch (i % 2, outcome) {
            case (0, .exited(let exit, _, _)): #expect(exit == 0)
            case (1, .forward(_, let next, _, _)): #expect(next == 2)
            default: Issue.record("sample \(i): \(outcome)")
            }
            guard case .exited = runner.run(inputs[i], policy: takeAll) else { Issue.record("sample \(i) alone did not exit"); continue }
        }
        // An override for an exit the policy does not have is ignored.
        #expect(runner.policy.overriding([7: 1]).thresholds == runner.policy.thresholds)
    }

    @Test func theModelsLastExitAlwaysAnswers() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        let runner = StageRunner(context: try Self.context(["edge", "cloud"], thresholds: [0], model: model, role: .cloud))
        #expect(runner.inputShape == [8, 7, 7])
        // The cloud stage's 3×3 convolutions run as Winograd, whose rounding differs from the
        // layer-by-layer reference: the answer is the compiled network's, which is close to it.
        let compiled = CompiledNetwork(net)
        let workspace = compiled.makeWorkspace()
        for i in Self.samples {
            let features = net.trunk(0, fixture.input(i))
            guard case .exited(let exit, let out, let passed) = runner.run(features) else {
                Issue.record("sample \(i) was forwarded past the last stage")
                continue
            }
            #expect(exit == 2)
            let edge = compiled.run(stage: 1, count: 1, input: features.data, workspace: workspace)
            let cloud = compiled.run(stage: 2, count: 1, input: edge.features, workspace: workspace)
            #expect(out == cloud.logits.withUnsafeBufferPointer { ExitOutput.summarize($0.baseAddress!, classes: compiled.classes) })
            let reference = net.classify(exit: 2, features: net.trunk(2, net.trunk(1, features)))[0]
            #expect(out.predicted == reference.predicted && abs(out.entropy - reference.entropy) < 1e-4)
            #expect(passed == [net.classify(exit: 1, features: net.trunk(1, features))[0].entropy])
        }
    }

    @Test func aSampleExitsOnlyWhenItsEntropyIsBelowTheThreshold() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let x = fixture.input(3)
        let entropy = model.network.classify(exit: 0, features: model.network.trunk(0, x))[0].entropy
        let atThreshold = StageRunner(context: try Self.context(["device"], thresholds: [entropy], model: model, role: .device))
        let justAbove = StageRunner(context: try Self.context(["device"], thresholds: [entropy.nextUp], model: model, role: .device))
        if case .exited = atThreshold.run(x) { Issue.record("exited with entropy == threshold") }
        if case .forward = justAbove.run(x) { Issue.record("forwarded with entropy < threshold") }
    }

    @Test func inputShapesFollowTheModel() throws {
        let model = try Self.model()
        #expect(StageRunner(context: try Self.context(["device"], thresholds: [0], model: model)).inputShape == [1, 28, 28])
        #expect(StageRunner(context: try Self.context(["edge"], thresholds: [0], model: model)).inputShape == [8, 7, 7])
        #expect(StageRunner(context: try Self.context(["cloud"], thresholds: [], model: model)).inputShape == [32, 4, 4])
    }

    @Test func contextTakesItsOwnThresholdsAndTheModelsDefaultsForTheRest() throws {
        let model = try Self.model()
        #expect(try Self.context(["device"], thresholds: [0.7], model: model).policy.thresholds == [0.7, 0.5])
        #expect(try Self.context(["edge"], thresholds: [0.4], model: model).policy.thresholds == [0.5, 0.4])
        #expect(try Self.context(["cloud"], thresholds: [], model: model).policy.thresholds == [0.5, 0.5])
        #expect(try Self.context(["device", "edge"], thresholds: [0.1, 0.9], model: model).policy.thresholds == [0.1, 0.9])

        var spec = Architectures.bLeNet3
        spec.defaults = .init(thresholds: [0.25, 0.75], codec: "int8")
        let network = try Network(spec: spec)
        network.initialize(seed: 5)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-node-defaults-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let withDefaults = try Model.save(network, to: folder)
        #expect(try Self.context(["device"], thresholds: [0.7], model: withDefaults).policy.thresholds == [0.7, 0.75])
        #expect(try Self.context(["edge"], thresholds: [], model: withDefaults).policy.thresholds == [0.25, 0.75])
    }

    /// A batch gives each sample exactly what `run(_:)` gives it alone, whatever its size and position.
    @Test(arguments: [["device"], ["edge"], ["cloud"], ["device", "edge"], ["edge", "cloud"]])
    func batchesMatchSamplesAlone(stages: [String]) throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        let role: BranchyTopology.NodeRole = stages.contains("cloud") ? .cloud : stages == ["device"] ? .device : .edge
        let indices = stages.map { s in net.stages.firstIndex { $0.name == s }! }
        // Thresholds at the median entropy of each hosted exit, so that some samples leave and some go on.
        var thresholds: [Float] = []
        var features: [Tensor] = (0..<37).map { i in
            var x = fixture.input(i)
            for s in 0..<indices[0] { x = net.trunk(s, x) }
            return x
        }
        let inputs = features
        for i in indices where i < net.stages.count - 1 {
            features = features.map { net.trunk(i, $0) }
            let entropies = features.map { net.classify(exit: i, features: $0)[0].entropy }.sorted()
            thresholds.append(entropies[entropies.count / 2])
        }
        let runner = StageRunner(context: try Self.context(stages, thresholds: thresholds, model: model, role: role))
        let alone = inputs.map { runner.run($0) }
        let exitedAlone = alone.filter { if case .exited = $0 { return true } else { return false } }.count
        if !indices.contains(net.stages.count - 1) { #expect(exitedAlone > 0 && exitedAlone < inputs.count) }
        for size in [1, 2, 5, 37] {
            for start in stride(from: 0, to: inputs.count - size + 1, by: max(1, size - 1)) {
                let batch = Array(inputs[start..<(start + size)])
                // Items as they come off the wire: without the leading 1.
                let outcomes = runner.run(batch: batch.map { Tensor(shape: Array($0.shape.dropFirst()), data: $0.data) })
                #expect(outcomes.count == size)
                for (k, got) in outcomes.enumerated() {
                    let want = alone[start + k]
                    switch (got, want) {
                    case (.exited(let e1, let o1, let p1), .exited(let e2, let o2, let p2)):
                        #expect(e1 == e2 && o1 == o2 && p1 == p2, "\(stages) sample \(start + k) in a batch of \(size)")
                    case (.forward(let f1, let n1, let b1, let p1), .forward(let f2, let n2, let b2, let p2)):
                        #expect(f1.shape == f2.shape && f1.data == f2.data && n1 == n2, "\(stages) sample \(start + k) in a batch of \(size)")
                        #expect(b1.exit == b2.exit && b1.output == b2.output)
                        // One entropy per hosted exit, the last the best exit's.
                        #expect(p1 == p2 && p1.count == indices.count && p1.last == b1.output.entropy)
                    default:
                        Issue.record("\(stages) sample \(start + k) in a batch of \(size): \(got) alone \(want)")
                    }
                }
            }
        }
    }

    @Test func contextRejectsAStageTheModelLacks() throws {
        let model = try Self.model()
        #expect(throws: NodeError.self) { try Self.context(["fog"], thresholds: [0], model: model) }
    }
}
