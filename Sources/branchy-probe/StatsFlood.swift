import ArgumentParser
import BranchyWire
import NIOCore

/// CONNECTIONS version 2 connections (as the comma-separated node names PEERS in turn) send statsRequest
/// frames with fresh ids as fast as they are taken and never read. Each must stop being read and be
/// closed by the node within SECONDS; the VmRSS of PID, sampled every 100 ms, must stay under MAX_RSS_MB.
struct StatsFlood: Check {
    static let configuration = CommandConfiguration(abstract: "Floods statsRequest frames without reading the answers.")
    @OptionGroup var cluster: Cluster
    @Argument var server: String
    @Argument var fingerprint: ModelFingerprint
    @Argument var pid: Int32
    @Argument var peers: String
    @Argument var connections: Int
    @Argument var seconds: Double
    @Argument var maxRssMb: Double

    /// What one flooding connection saw, in seconds from the start.
    struct Flow: Sendable {
        var sent = 0                  // statsRequest frames written
        var lastSent = 0.0            // when the last batch was taken
        var pendingSince: Double?     // when the batch being written was handed over
        var stalled: Double?          // when a batch first waited more than 200 ms, or was cut off unwritten
        var ended: Double?            // when the node closed the connection
    }

    func check() async throws {
        let names = peers.split(separator: ",").map(String.init)
        var links: [Link] = []
        defer { links.forEach { $0.hardClose() } }
        for i in 0..<connections {
            let link = try await cluster.authenticated(as: names[i % names.count], server: server, fingerprint: fingerprint, version: 2)
            links.append(link)
            try await link.channel.setOption(.autoRead, value: false).get()   // the answers are never read
        }
        let node = NodeProcess(pid: pid)
        let start = try node.memory(), c0 = try node.cpuTicks(), t0 = monotonic()
        let flows = Shared([Flow](repeating: Flow(), count: connections))
        let perBatch = 3000   // 3000 frames of at most 5 bytes: one TLS record
        let floods = links.enumerated().map { i, link in
            Task {
                var id: UInt64 = 1
                while !Task.isCancelled && flows({ $0[i].ended == nil }) {
                    var batch = ByteBuffer()
                    for k in 0..<UInt64(perBatch) { batch.writeCompactFrameHeader(type: .statsRequest, requestID: id + k, payloadLength: 0) }
                    flows { $0[i].pendingSince = monotonic() - t0 }
                    do { try await link.write(batch) } catch { break }
                    id += UInt64(perBatch)
                    flows { $0[i].sent += perBatch; $0[i].lastSent = monotonic() - t0; $0[i].pendingSince = nil }
                }
            }
        }
        var peak = start, samples = 0
        while monotonic() - t0 < seconds && node.alive {
            let now = monotonic() - t0
            guard let m = try? node.memory() else { break }
            peak = (max(peak.rss, m.rss), max(peak.hwm, m.hwm))
            samples += 1
            for (i, link) in links.enumerated() where flows({ $0[i].ended == nil }) {
                let open = await link.established()
                flows {
                    if let since = $0[i].pendingSince, now - since > 0.2, $0[i].stalled == nil { $0[i].stalled = since + 0.2 }
                    // Closed while a batch was still being written: the node had stopped reading it.
                    if !open, $0[i].stalled == nil, let since = $0[i].pendingSince { $0[i].stalled = since }
                    if !open { $0[i].ended = now }
                }
            }
            if flows({ $0.allSatisfy { $0.ended != nil } }) { break }
            await pause(0.1)
        }
        floods.forEach { $0.cancel() }
        links.forEach { $0.hardClose() }
        for flood in floods { await flood.value }
        let alive = node.alive
        let end = alive ? (try? node.memory().rss) ?? 0 : 0
        let cpu = alive ? Double(((try? node.cpuTicks()) ?? c0) - c0) / NodeProcess.ticksPerSecond : 0
        let seen = flows.value
        func list(_ values: [Double?]) -> String { "[" + values.map { $0.map { fmt($0) } ?? "None" }.joined(separator: ", ") + "]" }
        note("stats flood: \(connections) connections, \(seen.reduce(0) { $0 + $1.sent }) statsRequest frames written; per connection sent "
             + "\(seen.map(\.sent)), stalled at \(list(seen.map(\.stalled))) s, last batch at \(list(seen.map(\.lastSent))) s, "
             + "closed by the edge at \(list(seen.map(\.ended))) s; edge VmRSS \(fmt(start.rss, 0)) MB before, peak \(fmt(peak.rss, 0)) MB "
             + "over \(samples) samples, \(fmt(end, 0)) MB after; VmHWM \(fmt(start.hwm, 0)) -> \(fmt(peak.hwm, 0)) MB")
        try require(alive, "the edge is gone (it crashed or was killed during the stats flood)")
        let waited = seen.compactMap(\.stalled)
        let closed = seen.filter { $0.ended != nil }
        let delays = closed.map { $0.ended! - $0.lastSent }
        let summary = "\(seen.reduce(0) { $0 + $1.sent }) statsRequest frames on \(connections) connections that never read; edge VmRSS "
            + "\(fmt(start.rss, 0)) MB before, peak \(fmt(peak.rss, 0)) MB (VmHWM \(fmt(peak.hwm, 0)) MB, \(samples) samples every 100 ms), "
            + "\(fmt(end, 0)) MB at the end; edge CPU \(fmt(cpu)) s; \(waited.count) connections stopped being read "
            + (waited.isEmpty ? "" : "(\(fmt(waited.min()!, 1)) to \(fmt(waited.max()!, 1)) s in)")
            + ", \(closed.count) closed by the edge"
            + (delays.isEmpty ? "" : " \(fmt(delays.min()!, 1)) to \(fmt(delays.max()!, 1)) s after their last accepted batch")
        try require(peak.rss < maxRssMb, "\(summary): VmRSS not under \(fmt(maxRssMb, 0)) MB")
        try require(waited.count == connections, "\(summary): \(connections - waited.count) connections never had to wait: the edge kept reading")
        try require(closed.count == connections,
                    "\(summary): \(connections - closed.count) of \(connections) connections still open after \(fmt(seconds, 0)) s")
        print(summary)
    }
}
