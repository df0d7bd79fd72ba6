import BranchyModel
@testable import BranchyNode
import BranchyReport
import BranchyTopology
import BranchyWire
import Foundation
import NIOCore
import Testing

extension Sockets {
    /// Edge and cloud servers and a device runner in this process, on 127.0.0.1 with real mutual TLS.
    @Suite(.serialized) struct LiveClusterTests {
        static let samples = 50
        static let nodes = ["device", "edge", "cloud"]

        @Test func serversBoundToEveryInterfaceAreDialledAtTheirAddress() async throws {
            let fixture = try Fixture.shared()
            var options = ClusterOptions()
            options.bindEveryInterface = true
            try await Cluster.with(options) { cluster in
                try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                #expect(edge.context.config.listen == Endpoint(host: "0.0.0.0", port: cluster.edgePort))
                #expect(edge.context.config.dialAddress == Endpoint(host: "localhost", port: cluster.edgePort))
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                // Thresholds 0: every sample crosses both links.
                let records = await device.run(data: fixture.data, count: 8, concurrency: 4) { _ in }
                #expect(records.count == 8)
                for r in records {
                    #expect(r.status == .answered, "sample \(r.sample): \(r.status) \(r.reason)")
                    #expect(r.hops.map(\.link) == ["device->edge", "edge->cloud"], "sample \(r.sample)")
                }
            }
        }

        @Test func answersMatchTheNetworkRunInOneProcess() async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            let (t0, t1) = splittingThresholds(network: network, fixture: fixture, count: Self.samples)
            try await Cluster.with(ClusterOptions(deviceThreshold: t0, edgeThreshold: t1)) { cluster in
                try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let policy = ExitPolicy(thresholds: [device.context.policy.thresholds[0], edge.context.policy.thresholds[1]])
                #expect(policy.thresholds == [t0, t1])

                let records = await device.run(data: fixture.data, count: Self.samples, concurrency: 8) { _ in }

                #expect(records.map(\.sample) == Array(0..<Self.samples))
                let links = [[], ["device->edge"], ["device->edge", "edge->cloud"]]
                var perExit = [0, 0, 0]
                for r in records {
                    let want = inProcessAnswer(network: network, policy: policy, codec: .int8, input: fixture.input(r.sample))
                    perExit[want.exit] += 1
                    #expect(r.status == .answered, "sample \(r.sample): \(r.status) \(r.reason)")
                    #expect(r.label == Int(fixture.data.labels[r.sample]))
                    #expect(r.exit == want.exit, "sample \(r.sample)")
                    #expect(r.predicted == want.output.predicted, "sample \(r.sample)")
                    // Answers from upstream carry the entropy as binary16 (protocol version 2).
                    #expect(r.entropy == (want.exit == 0 ? want.output.entropy : Float(Float16(want.output.entropy))), "sample \(r.sample)")
                    #expect(r.node == Self.nodes[want.exit])
                    #expect(r.exitName == network.stages[want.exit].exitName)
                    #expect(r.hops.map(\.link) == links[want.exit], "sample \(r.sample)")
                    for h in r.hops {
                        #expect(h.responseFrameBytes >= 13)
                        // One flushed frame is one TLS 1.3 record: 22 bytes more on the wire.
                        #expect(h.requestTLSBytes == UInt64(TLSRecordOverhead.wireBytes(forFrame: Int(h.requestFrameBytes))), "\(h)")
                        #expect(h.responseTLSBytes == UInt64(TLSRecordOverhead.wireBytes(forFrame: Int(h.responseFrameBytes))), "\(h)")
                    }
                    if let first = r.hops.first {
                        // 392 int8 features in version 2: a 4- or 5-byte header, sampleID, deadline and stage in 4 to 6,
                        // the tensor's codec, rank, dims and int8 parameters in 10, then the 392 bytes.
                        #expect((392 + 18)...(392 + 21) ~= first.requestFrameBytes, "\(first)")
                        #expect(first.requestTLSBytes < 784, "the device sends less than the raw image")
                    }
                    if r.hops.count == 2 {
                        #expect((512 + 18)...(512 + 21) ~= r.hops[1].requestFrameBytes, "\(r.hops[1])")
                    }
                }
                #expect(perExit.allSatisfy { $0 > 0 }, "the thresholds should give every exit samples: \(perExit)")

                let stats = try #require(await device.linkTotals())
                #expect(stats.connections == 1)
                #expect(stats.handshakeBytes > 0)
                // The socket totals are the handshake plus the per-request figures of the device's link.
                let firstHops = records.compactMap(\.hops.first).reduce(UInt64(0)) { $0 + $1.requestTLSBytes + $1.responseTLSBytes }
                #expect(stats.bytesSent + stats.bytesReceived == stats.handshakeBytes + firstHops)
                let report = RunReport(records: records, exitNames: network.stages.map(\.exitName), inputShape: [1, 28, 28],
                                       duration: 1, handshakeBytes: stats.handshakeBytes, thresholds: policy.thresholds,
                                       codec: "int8", fingerprint: device.context.fingerprint.hex,
                                       topology: cluster.topologyURL.path, device: "device")
                #expect(report.answered == Self.samples)
                #expect(report.exits.map(\.count) == perExit)
                #expect(report.exits.map(\.node) == Self.nodes)
                #expect(report.links.map(\.link) == ["device->edge", "edge->cloud"])
                #expect(report.links[0].requests == perExit[1] + perExit[2])
                #expect(report.links[1].requests == perExit[2])
                #expect(report.totalWireBytes > 0)
                #expect(report.rawOffloadBytes > report.totalWireBytes)

                // The edge reports its own upstream link (statsRequest / stats, version 2): its handshake
                // and at least the bytes of the requests and answers the device saw crossing it.
                let upstream = await device.upstreamLinkTotals()
                #expect(upstream.map(\.link) == ["edge->cloud"])
                if let e = upstream.first {
                    #expect(e.connections == 1 && e.handshakeBytes > 0)
                    let edgeHops = records.compactMap { $0.hops.count == 2 ? $0.hops[1] : nil }
                    #expect(e.bytesSent >= edgeHops.reduce(0) { $0 + $1.requestTLSBytes } + 1)
                    #expect(e.bytesReceived >= edgeHops.reduce(0) { $0 + $1.responseTLSBytes })
                }
                var withTotals = report
                let own = try #require(await device.linkTotals())
                #expect(own.link == "device->edge" && own.handshakeBytes == stats.handshakeBytes)
                withTotals.setLinkTotals([own] + upstream)
                #expect(withTotals.handshakeBytesAllLinks == own.handshakeBytes + (upstream.first?.handshakeBytes ?? 0))
                #expect(withTotals.bytesPerSampleWithHandshakes > withTotals.bytesPerSample)
            }
        }

        /// Version 1 has no `statsRequest`: the device asks over a short version-2 connection after
        /// the run, so that a version-1 report counts the edge's link to the cloud too.
        @Test func aVersion1DeviceStillCountsEveryLinksHandshakes() async throws {
            try await Cluster.with(ClusterOptions(deviceProtocol: 1)) { cluster in
                _ = try await cluster.startServer("cloud")
                _ = try await cluster.startServer("edge")
                let device = try await cluster.startDevice()
                let records = await device.run(data: try Fixture.shared().data, count: 8, concurrency: 2) { _ in }
                #expect(records.allSatisfy { $0.status == .answered && $0.node == "cloud" })
                let own = try #require(await device.linkTotals())
                #expect(own.connections == 1, "the query connection is not counted in the device's link")
                let upstream = await device.upstreamLinkTotals()
                #expect(upstream.map(\.link) == ["edge->cloud"])
                #expect(upstream.first.map { $0.connections == 1 && $0.handshakeBytes > 0 } == true, "\(upstream)")
                #expect(try #require(await device.linkTotals()) == own)
            }
        }

        @Test func edgeDegradesWhenTheCloudIsDrainedMidRun() async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            // Thresholds 0: every sample needs the cloud.
            try await Cluster.with(ClusterOptions(edgePolicy: .degrade)) { cluster in
                let cloud = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let count = 40, stopAfter = 12, concurrency = 4
                // Paced (200 samples a second), so that the run is still going when progress reaches
                // `stopAfter` however busy the machine is: progress is reported in batches, and
                // samples may finish before it is.
                let records = await device.run(data: fixture.data, count: count, concurrency: concurrency, rate: 200) { done in
                    // No sample starts while progress is reported: this holds new samples (not the
                    // requests in flight) until the cloud has gone.
                    if done == stopAfter { blockingAwait { await cloud.drain(graceSeconds: 2) } }
                }

                #expect(records.map(\.sample) == Array(0..<count))
                let answered = records.filter { $0.status == .answered }
                let degraded = records.filter { $0.status == .degraded }
                #expect(answered.count + degraded.count == count, "\(records.filter { $0.status == .failed }.map(\.reason))")
                // Requests in flight when the drain began were still answered by the cloud; those
                // sent after it were answered by the edge. Progress may trail the answers by a few
                // samples, so the bound allows twice the window.
                #expect(answered.count >= stopAfter && answered.count < stopAfter + 2 * concurrency, "\(answered.count) answered")
                #expect(!degraded.isEmpty)
                let never = ExitPolicy(thresholds: [0, 0])
                for r in answered {
                    #expect(r.node == "cloud" && r.exit == 2 && r.reason.isEmpty)
                    #expect(r.hops.count == 2)
                }
                for r in degraded {
                    #expect(r.node == "edge" && r.exit == 1, "sample \(r.sample): \(r.node) exit \(r.exit)")
                    // Not connected any more, or sent just before the cloud's goodbye arrived and refused by it.
                    #expect(r.reason.contains("upstream unavailable") || r.reason.contains("shuttingDown"), "\(r.reason)")
                    // The edge's own exit answered; only the device->edge hop was crossed.
                    #expect(r.hops.map(\.link) == ["device->edge"])
                    let edgeExit = inProcessAnswer(network: network, policy: never, codec: .int8, input: fixture.input(r.sample)).outputs[1]
                    #expect(r.predicted == edgeExit.predicted && r.entropy == Float(Float16(edgeExit.entropy)))
                }
            }
        }

        /// Requests pipelined on one connection while the cloud's connections are cut: each gets
        /// exactly one answer, and the connection to the edge stays up.
        @Test(arguments: [FailurePolicy.degrade, .fail])
        func everyRequestIsAnsweredOnceWhenTheCloudDropsMidFlight(edgePolicy: FailurePolicy) async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            try await Cluster.with(ClusterOptions(edgePolicy: edgePolicy)) { cluster in
                let cloud = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let client = try await cluster.helloAsDevice(to: edge, certs: fixture.certs)

                func send(_ ids: ClosedRange<Int>) async {
                    var buffer = ByteBuffer()
                    for id in ids {
                        buffer.writeFrame(Frame(requestID: UInt64(id), message: .infer(deviceRequest(network: network, fixture: fixture, sample: id))))
                    }
                    await client.send(buffer)
                }
                await send(1...40)
                try await cluster.stop(cloud, graceSeconds: 0)  // cut the cloud's connections at once
                await send(41...50)  // sent after the cloud is gone: these cannot reach it

                #expect(await eventually(within: 10) { client.frames.count >= 51 }, "\(client.frames.count - 1) answers")
                try await Task.sleep(nanoseconds: 300_000_000)  // room for a second answer to any request
                let frames = Array(client.frames.dropFirst())  // after the helloAck
                #expect(frames.map(\.requestID).sorted() == (1...50).map(UInt64.init), "each request answered exactly once")
                #expect(!(await client.closed(within: 0)), "the edge closed the device's connection")
                var fromCloud = 0, notFromCloud = 0
                for f in frames {
                    switch f.message {
                    case .result(let r) where r.status == .ok:
                        #expect(r.nodeName == "cloud" && r.exitIndex == 2 && f.requestID <= 40)
                        #expect(r.hops.map(\.link) == ["edge->cloud"])
                        fromCloud += 1
                    case .result(let r):
                        #expect(edgePolicy == .degrade, "degraded answer under policy fail")
                        #expect(r.nodeName == "edge" && r.exitIndex == 1 && !r.reason.isEmpty)
                        notFromCloud += 1
                    case .error(let e):
                        #expect(edgePolicy == .fail, "error frame under policy degrade: \(e)")
                        // Unreachable, or refused by the cloud between its goodbye and the cut.
                        #expect(e.code == .upstreamUnavailable || e.code == .shuttingDown, "\(e)")
                        notFromCloud += 1
                    default:
                        Issue.record("unexpected \(f)")
                    }
                }
                #expect(notFromCloud >= 10)
                #expect(fromCloud + notFromCloud == 50)
            }
        }

        @Test(arguments: [FailurePolicy.degrade, .fail])
        func edgeWithPolicyFailSendsErrorFramesToTheDevice(devicePolicy: FailurePolicy) async throws {
            let fixture = try Fixture.shared()
            let network = try fixture.network()
            try await Cluster.with(ClusterOptions(devicePolicy: devicePolicy, edgePolicy: .fail)) { cluster in
                let cloud = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let before = await device.run(data: fixture.data, count: 6, concurrency: 3) { _ in }
                #expect(before.allSatisfy { $0.status == .answered && $0.node == "cloud" })

                try await cluster.stop(cloud, graceSeconds: 2)
                let after = await device.run(data: fixture.data, count: 10, concurrency: 5) { _ in }
                let never = ExitPolicy(thresholds: [0, 0])
                for r in after {
                    // The edge's error frame reaches the device, which applies its own policy.
                    #expect(r.reason.contains("upstreamUnavailable"), "\(r.reason)")
                    #expect(r.hops.isEmpty)
                    switch devicePolicy {
                    case .degrade:
                        let own = inProcessAnswer(network: network, policy: never, codec: .int8, input: fixture.input(r.sample)).outputs[0]
                        #expect(r.status == .degraded && r.node == "device" && r.exit == 0)
                        #expect(r.predicted == own.predicted)
                    case .fail:
                        #expect(r.status == .failed && r.exit == -1 && r.predicted == -1)
                        #expect(!r.correct)
                    }
                }
                let report = RunReport(records: after, exitNames: network.stages.map(\.exitName), inputShape: [1, 28, 28],
                                       duration: 1, handshakeBytes: 0, thresholds: [0, 0], codec: "int8", fingerprint: "",
                                       topology: "", device: "device")
                #expect(report.answered == 0)
                #expect(report.degraded + report.failed == 10)
                #expect(report.totalWireBytes == 0)
            }
        }

        /// A cloud that completes the handshake and then never answers: the edge's deadline answers instead.
        @Test(arguments: [FailurePolicy.degrade, .fail])
        func silentCloudIsCutOffByTheEdgeDeadline(edgePolicy: FailurePolicy) async throws {
            let fixture = try Fixture.shared()
            try await Cluster.with(ClusterOptions(edgePolicy: edgePolicy, edgeDeadlineMs: 200)) { cluster in
                let silent = try await cluster.startFake(as: "cloud", respond: acceptAndIgnore(ack: try cluster.context("cloud").hello))
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                let started = Date()
                let records = await device.run(data: fixture.data, count: 6, concurrency: 6) { _ in }
                let elapsed = Date().timeIntervalSince(started)

                #expect(elapsed < 3, "took \(elapsed) s for a 200 ms deadline")
                for r in records {
                    #expect(r.latencySeconds >= 0.19 && r.latencySeconds < 3, "latency \(r.latencySeconds)")
                    switch edgePolicy {
                    case .degrade:
                        #expect(r.status == .degraded && r.node == "edge" && r.exit == 1)
                        #expect(r.reason.contains("deadline of 200 ms"), "\(r.reason)")
                    case .fail:
                        // deadlineExceeded reaches the device, which degrades to its own exit.
                        #expect(r.status == .degraded && r.node == "device" && r.exit == 0)
                        #expect(r.reason.contains("deadlineExceeded"), "\(r.reason)")
                    }
                }
                let infers = silent.received.withLockedValue { $0.filter { if case .infer = $0.message { return true } else { return false } } }
                #expect(infers.count == 6)
                // Each carries what is left of the edge's 200 ms budget when it was sent.
                #expect(infers.allSatisfy { if case .infer(let r) = $0.message { return (1...200).contains(r.deadlineMillis) && r.stageIndex == 2 } else { return false } })
            }
        }

        @Test func edgeReconnectsToACloudRestartedOnTheSamePort() async throws {
            let fixture = try Fixture.shared()
            try await Cluster.with(ClusterOptions()) { cluster in
                let cloud = try await cluster.startServer("cloud")
                let edge = try await cluster.startServer("edge")
                try await cluster.waitUntilLinked(edge)
                let device = try await cluster.startDevice()
                func classify(_ i: Int) async throws -> SampleRecord {
                    switch device.classifyNow(sample: i, label: Int(fixture.data.labels[i]), input: fixture.input(i)) {
                    case .done(let record): return record
                    case .pending(let answer): return try await answer.get()
                    }
                }
                for i in 0..<3 {
                    let r = try await classify(i)
                    #expect(r.status == .answered && r.node == "cloud")
                }

                try await cluster.stop(cloud, graceSeconds: 2)
                for i in 3..<6 {
                    let r = try await classify(i)
                    #expect(r.status == .degraded && r.node == "edge", "\(r.status) from \(r.node): \(r.reason)")
                }

                try await cluster.startServer("cloud")  // same port; the edge is left alone
                let back = await eventually(within: 15) { (try? await classify(6))?.node == "cloud" }
                #expect(back, "the edge did not reconnect to the new cloud")
                for i in 7..<12 {
                    let r = try await classify(i)
                    #expect(r.status == .answered && r.node == "cloud", "\(r.status) from \(r.node): \(r.reason)")
                    #expect(r.hops.map(\.link) == ["device->edge", "edge->cloud"])
                }
                #expect(try await cluster.upstreamConnections(of: edge) == 2)
                #expect(await device.linkTotals()?.connections == 1)
            }
        }
    }
}
