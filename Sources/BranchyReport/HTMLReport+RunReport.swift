extension HTMLReport.Input {
    /// The adapter from a device run to the report's input: the one place that reads
    /// `RunReport` and `SampleRecord` fields for the HTML report.
    public init(report r: RunReport, records: [SampleRecord], calibration: Calibration? = nil) {
        let exits = r.exits.map { e in
            Exit(name: e.name, node: e.node, samples: e.count, accuracy: e.accuracy, degraded: e.degraded,
                 links: e.links.map { l in
                     LinkShare(link: l.link, bytesPerSample: e.count == 0 ? 0 : Double(l.requestTLSBytes + l.responseTLSBytes) / Double(e.count))
                 },
                 latenciesMs: records.filter { $0.exit == e.index }.map { $0.latencySeconds * 1000 })
        }
        let links = r.links.map { l in
            Link(name: l.link, requests: l.requests, meanUpBytes: l.meanRequestTLSBytes, meanDownBytes: l.meanResponseTLSBytes)
        }
        let thresholds = r.thresholds.map { HTMLText.compact(Double($0)) }.joined(separator: ", ")
        self.init(title: "Branchy run: \(r.device)",
                  details: [.init("topology", r.topology), .init("device", r.device), .init("codec", r.codec),
                            .init("thresholds", "[\(thresholds)]"), .init("model fingerprint", String(r.fingerprint.prefix(16))),
                            .init("raw offload", r.baseline.map { "measured by the run of \($0.topology)" } ?? "computed estimate (no --baseline run given)"),
                            .init("handshakes", "\(r.handshakeBytesAllLinks) bytes on \(r.linkTotals.count) link(s), "
                                  + HTMLText.fixed(r.bytesPerSampleWithHandshakes, 1) + " bytes per sample with them")],
                  samples: r.samples, answered: r.answered, degraded: r.degraded, failed: r.failed, accuracy: r.accuracy,
                  bytesPerSample: r.bytesPerSample, rawOffloadBytesPerSample: r.baseline?.bytesPerSample ?? r.rawOffloadBytesPerSample,
                  durationSeconds: r.durationSeconds, latencyP50Ms: r.latencyMs.p50, latencyP99Ms: r.latencyMs.p99,
                  exits: exits, links: links, calibration: calibration)
    }
}
