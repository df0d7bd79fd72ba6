import BranchyModel
import BranchyTensor
import BranchyTopology
import Foundation
import Testing
@testable import BranchyNode

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
                guard case .forward(let sent, let next, let best) = runner.run(x) else {
                    Issue.record("\(stages) sample \(i): exited with thresholds 0")
                    continue
                }
                #expect(next == stages.count)
                #expect(sent.shape == features.shape)
                #expect(sent.data == features.data)
                #expect(best.exit == lastHosted)
                #expect(best.output == net.classify(exit: lastHosted, features: features)[0])
            }
        }
    }

    @Test func hugeThresholdLetsTheFirstExitTakeEverything() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let runner = StageRunner(context: try Self.context(["device", "edge"], thresholds: [1e6, 1e6], model: model))
        for i in Self.samples {
            let x = fixture.input(i)
            guard case .exited(let exit, let out) = runner.run(x) else {
                Issue.record("sample \(i) was forwarded")
                continue
            }
            #expect(exit == 0)
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
            guard case .exited(let exit, let out) = runner.run(x) else {
                Issue.record("sample \(i) was forwarded")
                continue
            }
            #expect(exit == 1)
            // No codec between stages on one node: the second stage sees the first's float features.
            #expect(out == net.classify(exit: 1, features: net.trunk(1, net.trunk(0, x)))[0])
        }
    }

    @Test func theModelsLastExitAlwaysAnswers() throws {
        let fixture = try Fixture.shared()
        let model = try Self.model()
        let net = model.network
        let runner = StageRunner(context: try Self.context(["edge", "cloud"], thresholds: [0], model: model, role: .cloud))
        #expect(runner.inputShape == [8, 7, 7])
        for i in Self.samples {
            let features = net.trunk(0, fixture.input(i))
            guard case .exited(let exit, let out) = runner.run(features) else {
                Issue.record("sample \(i) was forwarded past the last stage")
                continue
            }
            #expect(exit == 2)
            #expect(out == net.classify(exit: 2, features: net.trunk(2, net.trunk(1, features)))[0])
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

    @Test func contextRejectsAStageTheModelLacks() throws {
        let model = try Self.model()
        #expect(throws: NodeError.self) { try Self.context(["fog"], thresholds: [0], model: model) }
    }
}
