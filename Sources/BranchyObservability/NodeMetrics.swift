import BranchyReport
import BranchyWire
import NIOConcurrencyHelpers
import Prometheus

/// A node's Prometheus metrics, in its own registry (so that several nodes can share a process,
/// as in the tests). Names and labels follow Prometheus conventions: `_total` counters, base
/// units (seconds, bytes), and label values from a small fixed set (exits, statuses, links).
///
/// Everything here is safe from any thread; the hot paths (a request answered, bytes read or
/// written) touch pre-made series only. Gauges that mirror runtime state (connections, queues,
/// readiness) are set by `collectors` just before each scrape.
public final class NodeMetrics: Sendable {
    /// Answer statuses, as the `status` label.
    public static let statuses = ["answered", "degraded", "failed"]
    /// Buckets of the request latency histograms, in seconds: 50 µs to 10 s.
    public static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(10),
    ]
    /// Buckets of the batch size histogram: powers of two up to the largest `maxBatch`.
    public static let batchBuckets: [Double] = (0...12).map { Double(1 << $0) }

    /// Where every series lives; `/metrics` emits it.
    public let registry = PrometheusCollectorRegistry()
    public let exitNames: [String]
    /// `requests[exit + 1][status]`: exit −1 is "none" (failed without any exit).
    private let requests: [[Counter]]
    private let latency: [DurationHistogram]
    public let inFlight: Gauge
    public let batchSize: ValueHistogram
    public let ready: Gauge
    private let thresholds: [Gauge]
    private let reloads: [String: Counter]
    private let handshakes: [String: Counter]
    private let links = NIOLockedValueBox<[String: LinkByteMeter]>([:])
    private let upstreamGauges = NIOLockedValueBox<[String: Gauge]>([:])
    private let retryCounters = NIOLockedValueBox<[String: Counter]>([:])
    private let ejectionCounters = NIOLockedValueBox<[String: Counter]>([:])
    private let upstreamLatency = NIOLockedValueBox<[String: DurationHistogram]>([:])
    private let connectionGauges = NIOLockedValueBox<[String: Gauge]>([:])
    private let hooks = NIOLockedValueBox<[@Sendable () async -> Void]>([])
    private let frontDoorCounters = NIOLockedValueBox<[String: Counter]>([:])
    private let frontDoorLatency = NIOLockedValueBox<[String: DurationHistogram]>([:])

    /// Makes the node's series: one per exit and status, plus the node's identity as `branchy_node_info`.
    public init(node: String, role: String, model: String, fingerprint: String, exitNames: [String], replica: Int?) {
        self.exitNames = exitNames
        let registry = self.registry
        _ = registry.makeGauge(name: "branchy_node_info",
                               labels: [("node", node), ("role", role), ("model", model), ("fingerprint", fingerprint),
                                        ("replica", replica.map(String.init) ?? "")],
                               help: "The node this process runs (always 1).").set(to: 1)
        requests = (["none"] + exitNames).map { exit in
            Self.statuses.map { status in
                registry.makeCounter(name: "branchy_requests_total", labels: [("exit", exit), ("status", status)],
                                     help: "Requests (on a device: samples) answered, by the exit that answered and status.")
            }
        }
        latency = (["none"] + exitNames).map { exit in
            registry.makeDurationHistogram(name: "branchy_request_duration_seconds", labels: [("exit", exit)], buckets: Self.latencyBuckets,
                                           help: "Time from a request's arrival (on a device: a sample's start) to its answer, by exit.")
        }
        inFlight = registry.makeGauge(name: "branchy_requests_in_flight", help: "Requests received and not yet answered.")
        batchSize = registry.makeValueHistogram(name: "branchy_batch_size", buckets: Self.batchBuckets,
                                                help: "Samples per batch run through the node's stages.")
        ready = registry.makeGauge(name: "branchy_ready", help: "1 when the node is ready: its upstream link is up, or it is the root.")
        thresholds = exitNames.map { exit in
            registry.makeGauge(name: "branchy_exit_threshold", labels: [("exit", exit)],
                               help: "Entropy threshold of each exit in force on this node (the last exit always answers: 0).")
        }
        var reloads: [String: Counter] = [:]
        for result in ["applied", "refused"] {
            reloads[result] = registry.makeCounter(name: "branchy_config_reloads_total", labels: [("result", result)],
                                                   help: "Topology reloads (SIGHUP), applied or refused.")
        }
        self.reloads = reloads
        var handshakes: [String: Counter] = [:]
        for side in ["server", "client"] {
            for result in ["ok", "failed"] {
                handshakes["\(side)/\(result)"] = registry.makeCounter(
                    name: "branchy_handshakes_total", labels: [("side", side), ("result", result)],
                    help: "TLS handshakes with hello, as server (from children) or client (to upstream), by result.")
            }
        }
        self.handshakes = handshakes
    }

    /// A request (or sample) answered: `exit` −1 when it failed without any exit.
    public func answered(exit: Int, status: SampleRecord.Status, nanos: UInt64) {
        let row = exit + 1
        guard requests.indices.contains(row) else { return }
        let column = status == .answered ? 0 : status == .degraded ? 1 : 2
        requests[row][column].increment()
        latency[row].record(.nanoseconds(Int64(min(nanos, UInt64(Int64.max)))))
    }

    /// An application's request to the front door answered with HTTP `code` (or the gRPC status's
    /// name) after `nanos`: `branchy_frontdoor_requests_total{protocol, method, code}` and, for infer,
    /// `branchy_frontdoor_request_duration_seconds{protocol, code}`.
    public func frontDoor(protocol proto: String, infer: Bool, code: String, nanos: UInt64) {
        let method = infer ? "infer" : "other"
        let key = "\(proto)|\(method)|\(code)"
        let counter = frontDoorCounters.withLockedValue { counters in
            if let c = counters[key] { return c }
            let c = registry.makeCounter(name: "branchy_frontdoor_requests_total", labels: [("protocol", proto), ("method", method), ("code", code)],
                                         help: "Application requests the front door answered, by protocol, method (infer or other) and status code.")
            counters[key] = c
            return c
        }
        counter.increment()
        guard infer else { return }
        let histogramKey = "\(proto)|\(code)"
        let histogram = frontDoorLatency.withLockedValue { histograms in
            if let h = histograms[histogramKey] { return h }
            let h = registry.makeDurationHistogram(name: "branchy_frontdoor_request_duration_seconds", labels: [("protocol", proto), ("code", code)],
                                                   buckets: Self.latencyBuckets,
                                                   help: "Time from an infer request's arrival at the front door to its answer, by protocol and status code.")
            histograms[histogramKey] = h
            return h
        }
        histogram.record(.nanoseconds(Int64(min(nanos, UInt64(Int64.max)))))
    }

    /// A message sent down as the answer to a request that arrived `nanos` ago.
    public func answered(_ message: Frame.Message, nanos: UInt64) {
        switch message {
        case .result(let r): answered(exit: Int(r.exitIndex), status: r.status == .degraded ? .degraded : .answered, nanos: nanos)
        default: answered(exit: -1, status: .failed, nanos: nanos)
        }
    }

    /// Sets the thresholds gauge to the policy in force.
    public func setThresholds(_ values: [Float]) {
        for (i, gauge) in thresholds.enumerated() { gauge.set(to: Double(i < values.count ? values[i] : 0)) }
    }

    /// Counts a topology reload.
    public func reloaded(applied: Bool) { reloads[applied ? "applied" : "refused"]?.increment() }

    /// Counts a handshake with hello, as `server` or `client`.
    public func handshake(server: Bool, ok: Bool) { handshakes["\(server ? "server" : "client")/\(ok ? "ok" : "failed")"]?.increment() }

    /// The byte counters of `link` (`child->parent`), made on first use.
    public func link(_ link: String) -> LinkByteMeter {
        links.withLockedValue { meters in
            if let m = meters[link] { return m }
            let m = LinkByteMeter(link: link, registry: registry)
            meters[link] = m
            return m
        }
    }

    /// Sets `branchy_upstream_requests{link, replica, state}` and `branchy_upstream_up{link, replica}`.
    public func setUpstream(link: String, replica: String, inFlight: Int, queued: Int, up: Bool) {
        func gauge(_ name: String, _ labels: [(String, String)], _ help: String) -> Gauge {
            let key = name + labels.map { "|\($0.1)" }.joined()
            return upstreamGauges.withLockedValue { gauges in
                if let g = gauges[key] { return g }
                let g = registry.makeGauge(name: name, labels: labels, help: help)
                gauges[key] = g
                return g
            }
        }
        let requestsHelp = "Requests on the upstream link: sent and unanswered (in_flight) or waiting for a place in the window (queued)."
        gauge("branchy_upstream_requests", [("link", link), ("replica", replica), ("state", "in_flight")], requestsHelp).set(to: Double(inFlight))
        gauge("branchy_upstream_requests", [("link", link), ("replica", replica), ("state", "queued")], requestsHelp).set(to: Double(queued))
        gauge("branchy_upstream_up", [("link", link), ("replica", replica)],
              "1 while the connection to this upstream replica is up and has finished its hello.").set(to: up ? 1 : 0)
    }

    /// Makes, at zero, every series a node of `role` will count into, so that `rate()` and alerts see
    /// them from the first scrape: the byte counters of `links` (the node's upstream link and its
    /// children's), the upstream link's retries, latency and the ejections of each of `replicas`,
    /// and the connection gauges of the children's links.
    public func prepare(upstreamLink: String?, replicas: [String], childLinks: [String]) {
        for l in childLinks + (upstreamLink.map { [$0] } ?? []) { _ = link(l) }
        if let upstreamLink {
            _ = retryCounter(upstreamLink)
            _ = upstreamHistogram(upstreamLink)
            for r in replicas { _ = ejectionCounter(link: upstreamLink, replica: r) }
        }
        setConnections(Dictionary(uniqueKeysWithValues: childLinks.map { ($0, 0) }))
    }

    /// Sets `branchy_tls_certificate_expiry_timestamp_seconds{node}`: when the node's certificate expires (Unix time).
    public func setCertificateExpiry(node: String, unixSeconds: Double) {
        registry.makeGauge(name: "branchy_tls_certificate_expiry_timestamp_seconds", labels: [("node", node)],
                           help: "When this node's TLS certificate expires (notAfter), in seconds since the Unix epoch.").set(to: unixSeconds)
    }

    /// Counts a replica taken out of rotation after consecutive failures.
    public func ejected(link: String, replica: String) {
        ejectionCounter(link: link, replica: replica).increment()
    }

    private func ejectionCounter(link: String, replica: String) -> Counter {
        ejectionCounters.withLockedValue { counters in
            let key = "\(link)|\(replica)"
            if let c = counters[key] { return c }
            let c = registry.makeCounter(name: "branchy_upstream_ejections_total", labels: [("link", link), ("replica", replica)],
                                         help: "Times an upstream replica was taken out of rotation after consecutive failed requests.")
            counters[key] = c
            return c
        }
    }

    /// Records the time from sending a request upstream to its answer.
    public func upstreamAnswered(link: String, nanos: UInt64) {
        upstreamHistogram(link).record(.nanoseconds(Int64(min(nanos, UInt64(Int64.max)))))
    }

    private func upstreamHistogram(_ link: String) -> DurationHistogram {
        upstreamLatency.withLockedValue { hs in
            if let h = hs[link] { return h }
            let h = registry.makeDurationHistogram(name: "branchy_upstream_request_duration_seconds", labels: [("link", link)],
                                                   buckets: Self.latencyBuckets,
                                                   help: "Time from sending a request upstream to its answer, by link.")
            hs[link] = h
            return h
        }
    }

    private func retryCounter(_ link: String) -> Counter {
        retryCounters.withLockedValue { counters in
            if counters[link] == nil {
                counters[link] = registry.makeCounter(name: "branchy_upstream_retries_total", labels: [("link", link)],
                                                      help: "Requests sent again to another replica after a replica was lost.")
            }
            return counters[link]!
        }
    }

    /// Counts a request sent again to another replica after the first was lost with its connection.
    public func retried(link: String) {
        retryCounter(link).increment()
    }

    /// Sets `branchy_connections{link}`: open, authenticated connections from children per link.
    public func setConnections(_ counts: [String: Int]) {
        connectionGauges.withLockedValue { gauges in
            for key in Set(gauges.keys).union(counts.keys) {
                if gauges[key] == nil {
                    gauges[key] = registry.makeGauge(name: "branchy_connections", labels: [("link", key)],
                                                     help: "Open connections from children that finished their hello, by link.")
                }
                gauges[key]!.set(to: Double(counts[key] ?? 0))
            }
        }
    }

    /// Runs `hook` before every scrape (to set gauges from the runtime's state).
    public func onScrape(_ hook: @escaping @Sendable () async -> Void) {
        hooks.withLockedValue { $0.append(hook) }
    }

    /// The exposition text: runs the scrape hooks, then emits every series.
    public func scrape() async -> [UInt8] {
        for hook in hooks.withLockedValue({ $0 }) { await hook() }
        return registry.emitToBuffer()
    }
}

/// The byte counters of one link: sent and received, handshakes apart from the traffic after them,
/// as `branchy_link_bytes_total{link, direction, kind}`. Counted below TLS, so a link's bytes at
/// both ends agree: what one end sent, the other received.
public final class LinkByteMeter: Sendable {
    public let handshakeSent: Counter
    public let handshakeReceived: Counter
    public let recordsSent: Counter
    public let recordsReceived: Counter

    public init(link: String, registry: PrometheusCollectorRegistry) {
        let help = "Bytes on a link below TLS, by direction (from this node's side) and kind: the TLS handshake with hello (handshake) "
            + "or everything after it (records)."
        func counter(_ direction: String, _ kind: String) -> Counter {
            registry.makeCounter(name: "branchy_link_bytes_total", labels: [("link", link), ("direction", direction), ("kind", kind)], help: help)
        }
        handshakeSent = counter("sent", "handshake")
        handshakeReceived = counter("received", "handshake")
        recordsSent = counter("sent", "records")
        recordsReceived = counter("received", "records")
    }
}
