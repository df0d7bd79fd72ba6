@testable import BranchyNode
import BranchyTopology
import BranchyTransport
import Foundation
import Testing

extension Sockets {
    /// Where a device finds its data set.
    @Suite struct NodeMainTests {
        @Test func anExplicitDatasetWins() async throws {
            try await Cluster.with { cluster in
                let ctx = try cluster.context("device")
                #expect(try NodeMain.datasetPath(explicit: "some/where", context: ctx) == "some/where")
            }
        }

        @Test func withoutDatasetKeyOrOptionTheErrorSaysWhatToDo() async throws {
            try await Cluster.with { cluster in
                let ctx = try cluster.context("device")
                let error = #expect(throws: NodeError.self) { try NodeMain.datasetPath(explicit: nil, context: ctx) }
                #expect(error?.description.contains("no 'dataset:' key and no --dataset given") == true)
            }
        }

        @Test(arguments: ["local", "b-lenet3-bin", "b-lenet", "compact", "cloud-only", "edge-cloud", "fanin", "faults", "faults-fail", "load", "hardening", "hardening-fd", "hardening-timeouts"])
        func shippedTopologiesNameTheShippedDataSet(name: String) throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let topology = try Topology.load(contentsOf: root.appendingPathComponent("topology/\(name).yaml"), checkFiles: false)
            #expect(topology.dataset == root.appendingPathComponent("data/fashion-mnist").standardizedFileURL)
        }
    }
}
