import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import NIOCore
import Testing
@testable import BranchyNode

extension Sockets.HostileInputTests {
    // MARK: - Hello and identity

    @Test func requestBeforeHello() async throws {
        try await withEdge { edge in
            let client = try await edge.connect()
            await client.send(Frame(requestID: 1, message: .infer(edge.request(1))))
            await expectConnectionError(client, .handshakeRequired)
        }
    }

    @Test func secondHello() async throws {
        try await withEdge { edge in
            let client = try await edge.ready()
            await client.send(Frame(requestID: 0, message: .hello(edge.deviceHello)))
            await expectConnectionError(client, .duplicateHello)
        }
    }

    @Test func requestIDZero() async throws {
        try await withEdge { edge in
            let client = try await edge.ready()
            await client.send(Frame(requestID: 0, message: .infer(edge.request(1))))
            await expectConnectionError(client, .badFrame, mentioning: "request id 0")
        }
    }

    /// Both frames arrive in one TLS record, so the second is read before the first can be answered.
    @Test func duplicateInFlightRequestID() async throws {
        try await withEdge { edge in
            let client = try await edge.ready()
            await client.send(Frame(requestID: 5, message: .infer(edge.request(1))),
                              Frame(requestID: 5, message: .infer(edge.request(2))))
            let first = await client.nextFrame(), second = await client.nextFrame()
            let answers = [first, second].compactMap { $0 }
            #expect(answers.count == 2 && answers.allSatisfy { $0.requestID == 5 })
            let errors = answers.compactMap { if case .error(let e) = $0.message { return e } else { return nil } }
            let results = answers.compactMap { if case .result(let r) = $0.message { return r } else { return nil } }
            #expect(errors.map(\.code) == [.duplicateRequestID])
            #expect(results.count == 1, "the original request still gets its answer")
            // The connection stays open, and the id may be used again once answered.
            await client.send(Frame(requestID: 5, message: .infer(edge.request(3))))
            guard case .result = await expectAnswer(client, id: 5) else { Issue.record("no answer to the reused id"); return }
            #expect(!(await client.closed(within: 0)))
        }
    }

    @Test func wrongFingerprint() async throws {
        try await withEdge { edge in
            let client = try await edge.connect()
            await client.send(Frame(requestID: 0, message: .hello(Hello(role: .device, nodeName: "device", fingerprint: .zero))))
            await expectConnectionError(client, .fingerprintMismatch)
        }
    }

    @Test func unsupportedProtocolVersionInHello() async throws {
        try await withEdge { edge in
            let client = try await edge.connect()
            var hello = edge.deviceHello
            hello.protocolVersion = 3
            await client.send(Frame(requestID: 0, message: .hello(hello)))
            await expectConnectionError(client, .unsupportedVersion)
        }
    }

    @Test func wrongRole() async throws {
        try await withEdge { edge in
            let client = try await edge.connect()
            await client.send(Frame(requestID: 0, message: .hello(Hello(role: .edge, nodeName: "device", fingerprint: edge.fingerprint))))
            await expectConnectionError(client, .wrongRole)
        }
    }

    /// The cloud's own certificate is valid, but the cloud is not a child of the edge: a known
    /// node in the wrong place gets `wrongRole`.
    @Test func nodeNotExpectedOnThisPort() async throws {
        try await withEdge { edge in
            let client = try await edge.connect(as: "cloud")
            await client.send(Frame(requestID: 0, message: .hello(Hello(role: .cloud, nodeName: "cloud", fingerprint: edge.fingerprint))))
            await expectConnectionError(client, .wrongRole, mentioning: "does not connect to this port")
        }
    }

    /// `device2` may connect, but only with its own certificate.
    @Test func certificateDoesNotNameTheHellosNode() async throws {
        try await withEdge { edge in
            let impostor = try await edge.connect(as: "device")
            await impostor.send(Frame(requestID: 0, message: .hello(Hello(role: .device, nodeName: "device2", fingerprint: edge.fingerprint))))
            await expectConnectionError(impostor, .unknownNode, mentioning: "certificate")

            let genuine = try await edge.connect(as: "device2")
            let ack = await genuine.hello(Hello(role: .device, nodeName: "device2", fingerprint: edge.fingerprint))
            guard case .helloAck = ack?.message else { Issue.record("device2 refused: \(String(describing: ack))"); return }
            await genuine.close()
        }
    }
}
