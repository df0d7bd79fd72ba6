@testable import BranchyNode
import BranchyObservability
import BranchyTransport
import BranchyWire
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Prometheus
import Testing

/// A node's Prometheus series: requests by exit and status, thresholds, reloads, handshakes,
/// link bytes below TLS, and the hooks that run before a scrape.
@Suite struct NodeMetricsTests {
    static let exits = ["device-exit", "edge-exit", "cloud-exit"]

    func makeMetrics(replica: Int? = nil) -> NodeMetrics {
        NodeMetrics(node: "edge", role: "edge", model: "b-lenet3", fingerprint: "0123456789abcdef", exitNames: Self.exits, replica: replica)
    }

    func requests(_ metrics: NodeMetrics, exit: String, status: String) -> Double? {
        MetricsText(metrics.registry.emitToString()).value("branchy_requests_total{exit=\"\(exit)\",status=\"\(status)\"}")
    }

    /// The cumulative buckets of one exit's latency histogram, as (upper bound in seconds, count).
    func buckets(_ text: MetricsText, exit: String) -> [(le: Double, count: Double)] {
        let prefix = "branchy_request_duration_seconds_bucket{exit=\"\(exit)\",le=\""
        return text.text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { line in
            let rest = line.dropFirst(prefix.count)
            guard let quote = rest.firstIndex(of: "\""), let count = Double(rest[rest.index(quote, offsetBy: 3)...]) else { return nil }
            let le = rest[..<quote] == "+Inf" ? Double.infinity : Double(rest[..<quote])
            return le.map { ($0, count) }
        }
    }

    @Test func theNodeIsNamedAndEveryRequestSeriesStartsAtZero() {
        let text = MetricsText(makeMetrics().registry.emitToString())
        #expect(text.value(#"branchy_node_info{node="edge",role="edge",model="b-lenet3",fingerprint="0123456789abcdef",replica=""}"#) == 1)
        for exit in ["none"] + Self.exits {
            for status in NodeMetrics.statuses {
                #expect(text.value("branchy_requests_total{exit=\"\(exit)\",status=\"\(status)\"}") == 0, "\(exit) \(status)")
            }
            #expect(text.value("branchy_request_duration_seconds_count{exit=\"\(exit)\"}") == 0)
        }
        #expect(text.text.contains("# TYPE branchy_requests_total counter"))
        #expect(text.text.contains("# TYPE branchy_request_duration_seconds histogram"))
        #expect(text.value("branchy_requests_in_flight") == 0)
        #expect(text.value("branchy_ready") == 0)
    }

    @Test func aReplicaIsNamedInTheNodeInfo() {
        let text = MetricsText(makeMetrics(replica: 1).registry.emitToString())
        #expect(text.value(#"branchy_node_info{node="edge",role="edge",model="b-lenet3",fingerprint="0123456789abcdef",replica="1"}"#) == 1)
    }

    @Test func answeredCountsTheExitAndStatus() {
        let metrics = makeMetrics()
        metrics.answered(exit: 1, status: .answered, nanos: 300_000)
        metrics.answered(exit: 1, status: .answered, nanos: 400_000)
        metrics.answered(exit: 2, status: .degraded, nanos: 2_000_000)
        metrics.answered(exit: 0, status: .answered, nanos: 10_000)
        metrics.answered(exit: -1, status: .failed, nanos: 20_000_000_000)
        let text = MetricsText(metrics.registry.emitToString())
        let expected: [String: [String: Double]] = [
            "none": ["failed": 1],
            "device-exit": ["answered": 1],
            "edge-exit": ["answered": 2],
            "cloud-exit": ["degraded": 1],
        ]
        for exit in ["none"] + Self.exits {
            for status in NodeMetrics.statuses {
                #expect(text.value("branchy_requests_total{exit=\"\(exit)\",status=\"\(status)\"}") == expected[exit]?[status] ?? 0,
                        "\(exit) \(status)")
            }
        }
        #expect(text.value(#"branchy_request_duration_seconds_count{exit="edge-exit"}"#) == 2)
        #expect(text.value(#"branchy_request_duration_seconds_count{exit="none"}"#) == 1)
        // 0.3 ms and 0.4 ms both fall in the 0.5 ms bucket, not the 0.25 ms one.
        let edge = buckets(text, exit: "edge-exit")
        #expect(edge.count == NodeMetrics.latencyBuckets.count + 1)
        #expect(edge.first { $0.le == 0.00025 }?.count == 0, "\(edge)")
        #expect(edge.first { $0.le == 0.0005 }?.count == 2, "\(edge)")
        // 20 s is above the largest bucket (10 s).
        let none = buckets(text, exit: "none")
        #expect(none.first { $0.le == 10 }?.count == 0, "\(none)")
        #expect(none.last?.le == .infinity && none.last?.count == 1, "\(none)")
    }

    @Test func anExitOutOfRangeIsNotCounted() {
        let metrics = makeMetrics()
        metrics.answered(exit: 3, status: .answered, nanos: 1)
        metrics.answered(exit: -2, status: .failed, nanos: 1)
        #expect(MetricsText(metrics.registry.emitToString()).sum("branchy_requests_total") == 0)
    }

    @Test func answeredMessagesCountByTheirExitAndStatus() {
        let metrics = makeMetrics()
        let result = InferResult(exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud", predictedClass: 3, confidence: 0.9, entropy: 0.1)
        var degraded = InferResult(exitIndex: 1, exitName: "edge-exit", nodeName: "edge", predictedClass: 3, confidence: 0.5, entropy: 0.9)
        degraded.status = .degraded
        metrics.answered(.result(result), nanos: 1_000)
        metrics.answered(.result(degraded), nanos: 1_000)
        metrics.answered(.error(ErrorFrame(code: .upstreamUnavailable, message: "gone")), nanos: 1_000)
        #expect(requests(metrics, exit: "cloud-exit", status: "answered") == 1)
        #expect(requests(metrics, exit: "edge-exit", status: "degraded") == 1)
        #expect(requests(metrics, exit: "none", status: "failed") == 1)
        #expect(MetricsText(metrics.registry.emitToString()).sum("branchy_requests_total") == 3)
    }

    @Test func thresholdsAreTheGaugesOfEveryExit() {
        let metrics = makeMetrics()
        metrics.setThresholds([0.25, 0.5])
        var text = MetricsText(metrics.registry.emitToString())
        #expect(text.value(#"branchy_exit_threshold{exit="device-exit"}"#) == 0.25)
        #expect(text.value(#"branchy_exit_threshold{exit="edge-exit"}"#) == 0.5)
        #expect(text.value(#"branchy_exit_threshold{exit="cloud-exit"}"#) == 0, "the last exit always answers")
        metrics.setThresholds([0.75])
        text = MetricsText(metrics.registry.emitToString())
        #expect(text.value(#"branchy_exit_threshold{exit="device-exit"}"#) == 0.75)
        #expect(text.value(#"branchy_exit_threshold{exit="edge-exit"}"#) == 0)
    }

    @Test func reloadsAndHandshakesAreCounted() {
        let metrics = makeMetrics()
        metrics.reloaded(applied: true)
        metrics.reloaded(applied: false)
        metrics.reloaded(applied: false)
        metrics.handshake(server: true, ok: true)
        metrics.handshake(server: false, ok: false)
        let text = MetricsText(metrics.registry.emitToString())
        #expect(text.value(#"branchy_config_reloads_total{result="applied"}"#) == 1)
        #expect(text.value(#"branchy_config_reloads_total{result="refused"}"#) == 2)
        #expect(text.value(#"branchy_handshakes_total{side="server",result="ok"}"#) == 1)
        #expect(text.value(#"branchy_handshakes_total{side="server",result="failed"}"#) == 0)
        #expect(text.value(#"branchy_handshakes_total{side="client",result="ok"}"#) == 0)
        #expect(text.value(#"branchy_handshakes_total{side="client",result="failed"}"#) == 1)
    }

    @Test func upstreamConnectionAndRetryGauges() {
        let metrics = makeMetrics()
        metrics.setUpstream(link: "edge->cloud", replica: "0", inFlight: 3, queued: 1, up: true)
        metrics.setUpstream(link: "edge->cloud", replica: "1", inFlight: 0, queued: 0, up: false)
        metrics.setUpstream(link: "edge->cloud", replica: "0", inFlight: 2, queued: 0, up: true)
        metrics.retried(link: "edge->cloud")
        metrics.retried(link: "edge->cloud")
        metrics.setConnections(["device->edge": 2, "device2->edge": 1])
        metrics.setConnections(["device->edge": 1])
        let text = MetricsText(metrics.registry.emitToString())
        #expect(text.value(#"branchy_upstream_requests{link="edge->cloud",replica="0",state="in_flight"}"#) == 2)
        #expect(text.value(#"branchy_upstream_requests{link="edge->cloud",replica="0",state="queued"}"#) == 0)
        #expect(text.value(#"branchy_upstream_up{link="edge->cloud",replica="0"}"#) == 1)
        #expect(text.value(#"branchy_upstream_up{link="edge->cloud",replica="1"}"#) == 0)
        #expect(text.value(#"branchy_upstream_retries_total{link="edge->cloud"}"#) == 2)
        #expect(text.value(#"branchy_connections{link="device->edge"}"#) == 1)
        #expect(text.value(#"branchy_connections{link="device2->edge"}"#) == 0, "a link without connections goes to 0")
    }

    /// The byte counter sits below TLS: what crossed the socket before `handshakeFinished(meter:)` is
    /// the link's handshake, what crosses it afterwards its records.
    @Test func linkBytesAreSplitAtTheEndOfTheHandshake() throws {
        let metrics = makeMetrics()
        let channel = EmbeddedChannel()
        let counter = ByteCounter()
        try channel.pipeline.syncOperations.addHandler(counter)

        try channel.writeInbound(ByteBuffer(repeating: 1, count: 100))
        try channel.writeOutbound(ByteBuffer(repeating: 2, count: 250))
        try channel.writeInbound(ByteBuffer(repeating: 3, count: 20))
        #expect(!counter.finishedHandshake)
        #expect(counter.bytesIn == 120 && counter.bytesOut == 250)

        let meter = metrics.link("device->edge")
        #expect(metrics.link("device->edge") === meter, "one meter per link")
        counter.handshakeFinished(meter: meter)
        #expect(counter.finishedHandshake)
        try channel.writeOutbound(ByteBuffer(repeating: 4, count: 7))
        try channel.writeInbound(ByteBuffer(repeating: 5, count: 30))
        try channel.writeInbound(ByteBuffer(repeating: 6, count: 12))
        // A second call changes nothing: the handshake is counted once.
        counter.handshakeFinished(meter: metrics.link("other->edge"))

        #expect(counter.bytesIn == 162 && counter.bytesOut == 257)
        let text = MetricsText(metrics.registry.emitToString())
        func bytes(_ link: String, _ direction: String, _ kind: String) -> Double? {
            text.value("branchy_link_bytes_total{link=\"\(link)\",direction=\"\(direction)\",kind=\"\(kind)\"}")
        }
        #expect(bytes("device->edge", "received", "handshake") == 120)
        #expect(bytes("device->edge", "sent", "handshake") == 250)
        #expect(bytes("device->edge", "received", "records") == 42)
        #expect(bytes("device->edge", "sent", "records") == 7)
        #expect(bytes("other->edge", "received", "handshake") == 0)
        #expect(bytes("other->edge", "sent", "records") == 0)

        // The bytes pass through unchanged.
        var read = 0
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { read += buffer.readableBytes }
        var written = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytes }
        #expect(read == 162 && written == 257)
        _ = try channel.finish()
    }

    @Test func withoutAMeterNothingIsCounted() throws {
        let channel = EmbeddedChannel()
        let counter = ByteCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        counter.handshakeFinished(meter: nil)
        #expect(!counter.finishedHandshake)
        try channel.writeInbound(ByteBuffer(repeating: 1, count: 9))
        #expect(counter.bytesIn == 9)
        _ = try channel.finish()
    }

    @Test func scrapeRunsTheHooksFirst() async {
        let metrics = makeMetrics()
        let calls = NIOLockedValueBox(0)
        metrics.onScrape {
            calls.withLockedValue { $0 += 1 }
            metrics.ready.set(to: 1)
        }
        metrics.onScrape { metrics.inFlight.set(to: 5) }
        #expect(MetricsText(metrics.registry.emitToString()).value("branchy_ready") == 0, "emitting alone runs no hook")
        let first = MetricsText(await metrics.scrape())
        #expect(first.value("branchy_ready") == 1)
        #expect(first.value("branchy_requests_in_flight") == 5)
        #expect(calls.withLockedValue { $0 } == 1)
        _ = await metrics.scrape()
        #expect(calls.withLockedValue { $0 } == 2)
    }
}
