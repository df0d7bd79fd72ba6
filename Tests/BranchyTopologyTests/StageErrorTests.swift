import Foundation
import Testing
@testable import BranchyTopology

/// Errors in which stages each node hosts and in the thresholds for their exits.
@Suite("Stages and thresholds")
struct StageErrorTests {
    @Test func unknownStageName() throws {
        try expectError(replacing("stages: [edge]", with: "stages: [egde]"), keyPath: "nodes[1].stages[0]",
                        reason: "unknown stage 'egde' (model stages: device, edge, cloud)")
    }

    @Test func stageNamesAreNotCheckedWithoutAStageOrder() throws {
        let topology = try loadValid(replacing("stages: [edge]", with: "stages: [egde]"), stageOrder: nil)
        #expect(topology.node(named: "edge")?.stages == ["egde"])
    }

    @Test func stagesOfANodeMustBeContiguous() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device, cloud], thresholds: [0.1]}
            """
        try expectError(yaml, keyPath: "nodes[0].stages", reason: "stages [device, cloud] are not contiguous in model order")
    }

    @Test func stagesOfANodeMustBeInModelOrder() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [edge, device], thresholds: [0.1], upstream: c}
              - {name: c, role: cloud, stages: [cloud], listen: "127.0.0.1:9"}
            """
        try expectError(yaml, keyPath: "nodes[0].stages", reason: "stages [edge, device] are not contiguous in model order")
    }

    @Test func gapOnThePath() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device], thresholds: [0.1], upstream: c}
              - {name: c, role: cloud, stages: [cloud], listen: "127.0.0.1:9"}
            """
        try expectError(yaml, keyPath: "nodes[1].stages", reason: "stage 'edge' is hosted by no node on the path d -> c")
    }

    @Test func deviceMustHostTheFirstStage() throws {
        try expectError(replacing("stages: [device]", with: "stages: [edge]"), keyPath: "nodes[0].stages",
                        reason: "stage 'device' is hosted by no node on the path device -> edge -> cloud")
    }

    @Test func overlapOnThePath() throws {
        let yaml = replacing("stages: [device]\n    thresholds: [0.3]", with: "stages: [device, edge]\n    thresholds: [0.3, 0.4]")
        try expectError(yaml, keyPath: "nodes[1].stages",
                        reason: "stage 'edge' is hosted twice on the path device -> edge -> cloud: by 'device' and by 'edge'")
    }

    @Test func rootMustHostTheLastStage() throws {
        let yaml = """
            model: m
            nodes:
              - {name: d, role: device, stages: [device], thresholds: [0.1], upstream: c}
              - {name: c, role: cloud, stages: [edge], listen: "127.0.0.1:9"}
            """
        try expectError(yaml, keyPath: "nodes[1].stages",
                        reason: "the path d -> c ends at stage 'edge'; its root 'c' must host the model's last stage 'cloud'")
    }

    @Test func everyDeviceOfATreeIsChecked() throws {
        // device-2 skips the edge stage by talking to the cloud directly.
        let yaml = replacing("  - name: cloud\n", with: """
              - name: device-2
                role: device
                stages: [device]
                thresholds: [0.3]
                upstream: cloud
              - name: cloud

            """)
        try expectError(yaml, keyPath: "nodes[3].stages", reason: "stage 'edge' is hosted by no node on the path device-2 -> cloud")
    }

    @Test func tooManyThresholds() throws {
        try expectError(replacing("thresholds: [0.4]", with: "thresholds: [0.4, 0.5]"), keyPath: "nodes[1].thresholds",
                        reason: "expected 1 threshold (one per hosted exit other than the model's last: edge), got 2")
    }

    @Test func omittedThresholdsMeanTheModelDefaults() throws {
        let topology = try loadValid(replacing("    thresholds: [0.3]\n", with: ""))
        #expect(topology.node(named: "device")?.thresholds == [])
    }

    @Test func lastExitTakesNoThreshold() throws {
        try expectError(replacing("stages: [cloud]", with: "stages: [cloud]\n    thresholds: [0.5]"), keyPath: "nodes[2].thresholds",
                        reason: "expected 0 thresholds (it hosts only the model's last exit, which needs none), got 1")
    }

    @Test func thresholdCountWithoutStageOrderFollowsTheRoot() throws {
        let yaml = replacing("stages: [cloud]", with: "stages: [cloud]\n    thresholds: [0.5]")
        try expectError(yaml, keyPath: "nodes[2].thresholds", reason: "expected 0 thresholds", stageOrder: nil)
    }
}
