import BranchyModel
@testable import BranchyNode
import BranchyTopology
import BranchyTransport
import BranchyWire
import Foundation
import NIOCore
import Testing

extension Sockets {
    /// The findings of a security review, each against a live edge: impersonation, missing
    /// timeouts, connection caps, the input budget and a CA that did not sign the node.
    @Suite struct HardeningTests {
        /// An edge only (threshold 1000: it answers everything), with `limits`.
        func withEdge(limits: [String: Int], _ body: (Cluster, InferenceServer) async throws -> Void) async throws {
            try await Cluster.with(ClusterOptions(edgeThreshold: 1000, edgeLimits: limits)) { cluster in
                let server = try await cluster.startServer("edge")
                try await body(cluster, server)
            }
        }

        func hello(_ server: InferenceServer, name: String = "device") -> Hello {
            Hello(role: .device, nodeName: name, fingerprint: server.context.fingerprint)
        }

        /// A connection to the edge: TLS with `name`'s certificate, or plain TCP when `name` is nil.
        func connect(_ cluster: Cluster, as name: String?) async throws -> WireClient {
            try await WireClient.connect(port: cluster.edgePort, group: cluster.group,
                                         identity: try name.map { .node($0, in: try Fixture.shared().certs) })
        }

        /// A connection as `name` whose hello the edge accepted.
        func authenticated(_ cluster: Cluster, _ server: InferenceServer, as name: String = "device") async throws -> WireClient {
            let client = try await connect(cluster, as: name)
            guard case .helloAck = await client.hello(hello(server, name: name))?.message else {
                throw TestFailure("the edge did not accept the hello of '\(name)'")
            }
            return client
        }

        @Test func aDeviceRefusesAnUpstreamPresentingAnotherNodesCertificate() async throws {
            try await Cluster.with(ClusterOptions(deviceThreshold: 0)) { cluster in
                // device2's certificate is signed by the cluster CA and (from old certificate scripts)
                // might name 127.0.0.1: it must still not pass for the edge.
                let edge = Endpoint(host: "127.0.0.1", port: cluster.edgePort)
                let fingerprint = try cluster.context("edge").fingerprint
                let forgedAck = Hello(role: .edge, nodeName: "edge", fingerprint: fingerprint)
                let fake = try await cluster.startFake(as: "device2", at: edge) { frame in
                    switch frame.message {
                    case .hello: return [Frame(requestID: 0, message: .helloAck(forgedAck))]
                    case .infer: return [Frame(requestID: frame.requestID, message: .result(InferResult(
                        exitIndex: 2, exitName: "cloud-exit", nodeName: "edge", predictedClass: 0, confidence: 1, entropy: 0, hops: [])))]
                    default: return []
                    }
                }
                let device = try await cluster.startDevice(connectTimeout: 1.5)
                let records = await device.run(data: try Fixture.shared().data, count: 8, concurrency: 2) { _ in }
                #expect(records.allSatisfy { $0.node == "device" && $0.status == .degraded }, "\(records.map(\.node))")
                // The device closed before saying hello: the impostor learnt nothing and got nothing.
                #expect(fake.received.withLockedValue { $0.isEmpty })
            }
        }

        @Test func rawTCPAndSilentTLSConnectionsAreClosedByTheHandshakeTimeout() async throws {
            try await withEdge(limits: ["handshakeTimeoutMs": 1_000]) { cluster, server in
                let raw = try await connect(cluster, as: nil)
                let silent = try await connect(cluster, as: "device")
                #expect(!(await raw.closed(within: 0.2)))
                #expect(await raw.closed(within: 5))
                #expect(await silent.closed(within: 5))
                #expect(await eventually { server.connections.count == 0 })
            }
        }

        @Test func anIdleConnectionGetsGoodbyeAndIsClosed() async throws {
            try await withEdge(limits: ["idleTimeoutMs": 500]) { cluster, server in
                let client = try await authenticated(cluster, server)
                #expect(await client.closed(within: 4))
                #expect(client.frames.last?.message == .goodbye)
            }
        }

        @Test func aSlowFrameIsNotCutOffByTheIdleTimeout() async throws {
            // Bytes every 100 ms for 3 s against an idle timeout of 1.5 s (margins for slow sanitizer builds).
            try await withEdge(limits: ["idleTimeoutMs": 1_500]) { cluster, server in
                let client = try await authenticated(cluster, server)
                var header = ByteBuffer()
                header.writeFrameHeader(FrameHeader(type: .infer, requestID: 1, payloadLength: 100_000))
                await client.send(header)
                for _ in 0..<30 {
                    try await Task.sleep(for: .milliseconds(100))
                    await client.send(ByteBuffer(repeating: 0, count: 1_000))
                }
                #expect(!(await client.closed(within: 0)), "closed while bytes were still arriving")
                #expect(await client.closed(within: 6))
            }
        }

        @Test func aFrameThatStopsArrivingIsRefusedAndItsBudgetFreed() async throws {
            try await withEdge(limits: ["handshakeTimeoutMs": 1_000]) { cluster, server in
                let client = try await authenticated(cluster, server)
                // 20,000 bytes must arrive within max(1 s, 20,000 / 32 KiB/s): this frame never completes.
                var b = ByteBuffer()
                b.writeFrameHeader(FrameHeader(type: .infer, requestID: 1, payloadLength: 20_000))
                b.writeRepeatingByte(0, count: 100)
                await client.send(b)
                #expect(await eventually { server.budget.used == 20_020 })
                guard case .error(let e) = await client.nextFrame(within: 6)?.message else { Issue.record("no error"); return }
                #expect(e.code == .limitReached && e.message.contains("was not complete within"), "\(e)")
                #expect(await client.closed())
                #expect(await eventually { server.budget.used == 0 })
            }
        }

        @Test func aFullNodeOfAuthenticatedPeersRefusesNewcomers() async throws {
            try await withEdge(limits: ["maxConnections": 2]) { cluster, server in
                var peers: [WireClient] = []
                for name in ["device", "device2"] {
                    peers.append(try await authenticated(cluster, server, as: name))
                }
                let newcomer = try await connect(cluster, as: nil)
                #expect(await newcomer.closed(within: 3))
                for p in peers { #expect(!(await p.closed(within: 0))) }
                for p in peers { await p.close() }
            }
        }

        @Test func onePeerMayHoldOnlyItsShareOfConnections() async throws {
            try await withEdge(limits: ["maxConnectionsPerPeer": 2]) { cluster, server in
                var clients: [WireClient] = []
                for _ in 0..<2 {
                    clients.append(try await authenticated(cluster, server))
                }
                let third = try await connect(cluster, as: "device")
                guard case .error(let e) = await third.hello(hello(server))?.message else { Issue.record("third connection accepted"); return }
                #expect(e.code == .limitReached)
                #expect(await third.closed())
                // Another identity is not affected.
                let other = try await authenticated(cluster, server, as: "device2")
                for c in clients + [other] { await c.close() }
            }
        }

        @Test func partialFramesBeyondTheInputBudgetAreRefused() async throws {
            try await withEdge(limits: ["inputBudgetBytes": 1 << 20, "peerInputBudgetBytes": 600_000]) { cluster, server in
                func holder(_ name: String) async throws -> WireClient {
                    let c = try await authenticated(cluster, server, as: name)
                    // A header announcing 500,000 payload bytes, then only 1,000 of them.
                    var b = ByteBuffer()
                    b.writeFrameHeader(FrameHeader(type: .infer, requestID: 1, payloadLength: 500_000))
                    b.writeRepeatingByte(0, count: 1_000)
                    await c.send(b)
                    return c
                }
                let first = try await holder("device")
                #expect(await eventually { server.budget.used == 500_020 })
                // device's second partial frame would exceed its own budget of 600,000 bytes.
                let second = try await holder("device")
                guard case .error(let e) = await second.nextFrame()?.message else { Issue.record("no error"); return }
                #expect(e.code == .limitReached && e.message.contains("budget"))
                #expect(await second.closed())
                // device2 fits in the node budget (1 MiB) once, not twice.
                let third = try await holder("device2")
                #expect(await eventually { server.budget.used == 1_000_040 })
                #expect(!(await third.closed(within: 0.3)))
                await first.close()
                #expect(await eventually { server.budget.used == 500_020 })
                await third.close()
                #expect(await eventually { server.budget.used == 0 })
            }
        }

        @Test func aFullNodeShedsUnauthenticatedConnectionsForAValidDevice() async throws {
            try await withEdge(limits: ["maxConnections": 4]) { cluster, server in
                var idle: [WireClient] = []
                for _ in 0..<6 { idle.append(try await connect(cluster, as: nil)) }
                #expect(await eventually { server.connections.count == 4 })
                let device = try await authenticated(cluster, server)
                #expect(server.connections.count <= 4)
                let closedIdle = await idle.asyncFilter { await $0.closed(within: 0.5) }
                #expect(closedIdle.count >= 3)
                for c in idle + [device] { await c.close() }
            }
        }

        @Test func aServerWhoseCertificateTheCADidNotSignDoesNotStart() async throws {
            let fixture = try Fixture.shared()
            let options = ClusterOptions(edgeTLS: ["ca": fixture.otherCA.appendingPathComponent("ca.pem").path])
            try await Cluster.with(options) { cluster in
                let error = await #expect(throws: NodeError.self) { try await cluster.startServer("edge") }
                #expect(error?.description.contains("is not accepted by the CA") == true, "\(String(describing: error))")
            }
        }
    }
}

extension Array {
    func asyncFilter(_ keep: (Element) async -> Bool) async -> [Element] {
        var out: [Element] = []
        for e in self where await keep(e) { out.append(e) }
        return out
    }
}
