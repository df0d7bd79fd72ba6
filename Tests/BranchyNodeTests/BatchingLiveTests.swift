import BranchyModel
import BranchyTopology
import BranchyWire
import Foundation
import NIOCore
import Testing
@testable import BranchyNode

extension Sockets {
    /// The batcher of live edge and cloud servers in this process.
    @Suite(.serialized) struct BatchingLiveTests {
        /// Requests that arrive together are run as batches at the edge and at the cloud, and every
        /// answer is exactly the one the network gives the sample alone.
        @Test func pipelinedRequestsAreBatchedAndAnsweredAsAlone() async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            let count = 40
            let (_, edgeThreshold) = splittingThresholds(network: network, fixture: fixture, count: count)
            try await Cluster.with(ClusterOptions(edgeThreshold: edgeThreshold)) { cluster in
                let cloud = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let client = try await cluster.helloAsDevice(to: edge, certs: fixture.certs)

                var buffer = ByteBuffer()
                for i in 0..<count {
                    buffer.writeFrame(Frame(requestID: UInt64(i + 1), message: .infer(deviceRequest(network: network, fixture: fixture, sample: i))))
                }
                await client.send(buffer)
                #expect(await eventually(within: 10) { client.frames.count >= count + 1 }, "\(client.frames.count - 1) answers")

                let policy = ExitPolicy(thresholds: [0, edgeThreshold])
                var atEdge = 0
                for f in client.frames.dropFirst() {
                    let sample = Int(f.requestID) - 1
                    guard case .result(let r) = f.message else { Issue.record("sample \(sample): \(f.message)"); continue }
                    let want = inProcessAnswer(network: network, policy: policy, codec: .int8, input: fixture.input(sample))
                    #expect(Int(r.exitIndex) == want.exit, "sample \(sample)")
                    #expect(Int(r.predictedClass) == want.output.predicted && r.entropy == (want.exit == 1 ? want.output.entropy : Float(Float16(want.output.entropy))), "sample \(sample)")
                    // (answers from the cloud crossed a version-2 link, which carries the entropy as binary16)
                    if want.exit == 1 { atEdge += 1 }
                }
                #expect(atEdge > 0 && atEdge < count, "the threshold should split the samples: \(atEdge) at the edge")

                let edgeBatches = await edge.batchHistogram()
                let cloudBatches = await cloud.batchHistogram()
                #expect(edgeBatches.samples == count)
                #expect(cloudBatches.samples == count - atEdge)
                #expect(edgeBatches.batches < count, "no batch of more than one sample: \(edgeBatches.summary)")
                #expect(edgeBatches.counts.count - 1 <= 6, "a batch above maxBatch (64): \(edgeBatches.summary)")
            }
        }

        /// A batch that is running does not hold up a lone request for more than it takes.
        @Test func aLoneRequestIsAnsweredAtOnce() async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            try await Cluster.with(ClusterOptions()) { cluster in
                try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let client = try await WireClient.connect(port: cluster.edgePort, group: cluster.group,
                                                          identity: .node("device", in: fixture.certs))
                _ = await client.hello(Hello(role: .device, nodeName: "device", fingerprint: edge.context.fingerprint))
                for i in 0..<5 {
                    await client.send(Frame(requestID: UInt64(i + 1), message: .infer(deviceRequest(network: network, fixture: fixture, sample: i))))
                    #expect(await eventually(within: 5) { client.frames.count >= i + 2 })
                }
                let batches = await edge.batchHistogram()
                #expect(batches.counts == [5], "\(batches.summary)")
            }
        }
    }
}
