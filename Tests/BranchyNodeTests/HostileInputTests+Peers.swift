import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import NIOCore
import Testing
@testable import BranchyNode

extension Sockets.HostileInputTests {
    // MARK: - TLS

    @Test func plaintextClientGetsNoFrame() async throws {
        try await withEdge { edge in
            let client = try await edge.connect(nil)
            var hello = ByteBuffer()
            hello.writeFrame(Frame(requestID: 0, message: .hello(edge.deviceHello)))
            await client.send(hello)
            #expect(await client.closed())
            #expect(client.frames.isEmpty)
            let magic: [UInt8] = [0x42, 0x52, 0x4E, 0x59]
            #expect(!client.rawBytes.starts(with: magic), "a frame reached a plaintext client")
            // Whatever came back was TLS (an alert record), never Branchy data.
            if let first = client.rawBytes.first { #expect(first == 0x15, "first byte \(first)") }
        }
    }

    /// Expects the server to refuse the TLS peer with an alert whose name contains `alert`.
    func expectTLSRefused(_ edge: Edge, _ identity: WireClient.Identity, alert: String,
                          sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let client = try await edge.connect(identity)
        // In TLS 1.3 the client may think the handshake done before the server checks its
        // certificate; either way the hello must get no answer and the connection must close.
        await client.send(Frame(requestID: 0, message: .hello(edge.deviceHello)))
        #expect(await client.closed(), "the server kept the connection", sourceLocation: sourceLocation)
        #expect(client.frames.isEmpty, "\(client.frames)", sourceLocation: sourceLocation)
        #expect(client.errors.contains { "\($0)".contains(alert) }, "\(client.errors)", sourceLocation: sourceLocation)
    }

    @Test func clientWithoutACertificate() async throws {
        try await withEdge { edge in
            let anonymous = WireClient.Identity(ca: edge.fixture.certs.appendingPathComponent("ca.pem"), cert: nil, key: nil)
            try await expectTLSRefused(edge, anonymous, alert: "CERTIFICATE_REQUIRED")
        }
    }

    @Test func certificateFromAnotherCA() async throws {
        try await withEdge { edge in
            try await expectTLSRefused(edge, .node("device", in: edge.fixture.otherCA, ca: edge.fixture.certs.appendingPathComponent("ca.pem")),
                                       alert: "UNKNOWN_CA")
        }
    }

    @Test func expiredCertificate() async throws {
        try await withEdge { edge in
            try await expectTLSRefused(edge, .node("device", in: edge.fixture.expired, ca: edge.fixture.certs.appendingPathComponent("ca.pem")),
                                       alert: "CERTIFICATE_EXPIRED")
        }
    }

    /// The client side checks the server too: an edge whose certificate is from another CA is refused.
    @Test func serverFromAnotherCAIsRefusedByTheClient() async throws {
        try await withEdge { edge in
            let client = try await edge.connect(.node("device", in: edge.fixture.otherCA))
            await client.send(Frame(requestID: 0, message: .hello(edge.deviceHello)))
            #expect(await client.closed())
            #expect(client.frames.isEmpty)
            #expect(client.errors.contains { "\($0)".contains("CERTIFICATE_VERIFY_FAILED") }, "\(client.errors)")
        }
    }

    // MARK: - Hostile upstream

    /// An upstream that answers with an exit index the model does not have must not bring the device down.
    @Test func deviceSurvivesAResultForAnExitTheModelLacks() async throws {
        let fixture = try Fixture.shared()
        try await Cluster.with(ClusterOptions()) { cluster in
            let ack = try cluster.context("edge").hello
            try await cluster.startFake(as: "edge") { frame in
                switch frame.message {
                case .hello: return [Frame(requestID: 0, message: .helloAck(ack))]
                case .infer: return [Frame(requestID: frame.requestID, message: .result(InferResult(
                    exitIndex: 200, exitName: "nowhere", nodeName: "edge", predictedClass: 3, confidence: 0.9, entropy: 0.1, hops: [])))]
                default: return []
                }
            }
            let device = try await cluster.startDevice()
            let records = await device.run(data: fixture.data, count: 3, concurrency: 3) { _ in }
            for r in records {
                #expect(r.status == .degraded && r.node == "device" && r.exit == 0, "\(r.status) exit \(r.exit) from \(r.node)")
            }
            // The first impossible answer is refused by name, and the link that sent it dropped: the
            // samples still in flight or sent after it degrade for the lost connection.
            #expect(records.contains { $0.reason.contains("exitIndex is 200") }, "\(records.map(\.reason))")
        }
    }
}
