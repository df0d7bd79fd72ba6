import ArgumentParser
import BranchyWire
import NIOCore

/// CONNECTIONS authenticated connections (PER_PEER per device identity: device-1, device-2, ...) each
/// announce a 4 MiB infer frame and send all of it but 4 KiB. Those beyond the input budgets must get
/// error 17 and be closed, the others stay open; the VmRSS/VmHWM of PID must stay under MAX_RSS_MB.
/// After all are closed, a new connection may buffer a 4 MiB frame again (the budget was released).
struct Budget: Check {
    static let configuration = CommandConfiguration(abstract: "Checks that partial 4 MiB frames beyond the input budgets are refused.")
    @OptionGroup var cluster: Cluster
    @Argument var server: String
    @Argument var fingerprint: ModelFingerprint
    @Argument var pid: Int32
    @Argument var connections: Int
    @Argument var perPeer: Int
    @Argument var totalBudget: Int
    @Argument var peerBudget: Int
    @Argument var maxRssMb: Double

    func check() async throws {
        let node = NodeProcess(pid: pid), start = try node.memory()
        var peak = start
        func sample() throws {
            let m = try node.memory()
            peak = (max(peak.rss, m.rss), max(peak.hwm, m.hwm))
        }
        // Which connections should get their reservation, in the order the frames are sent.
        let payload = 4 << 20, size = FrameHeader.size + payload
        let peers = (0..<connections).map { "device-\($0 / perPeer + 1)" }
        var used = 0, byPeer: [String: Int] = [:], expected = 0
        for p in peers where byPeer[p, default: 0] + size <= peerBudget && used + size <= totalBudget {
            (used, byPeer[p], expected) = (used + size, byPeer[p, default: 0] + size, expected + 1)
        }
        var links: [Link] = []
        defer { links.forEach { $0.hardClose() } }
        let t0 = monotonic()
        for p in peers { links.append(try await cluster.authenticated(as: p, server: server, fingerprint: fingerprint)) }
        note("budget: \(connections) connections said hello in \(fmt(monotonic() - t0)) s; edge RSS \(fmt(start.rss, 0)) MB before")
        /// An infer frame header announcing 4 MiB, and the first `bytes` of its payload.
        func announce(_ bytes: Int) -> ByteBuffer {
            var out = ByteBuffer()
            out.writeFrameHeader(FrameHeader(type: .infer, requestID: 1, payloadLength: UInt32(payload)))
            out.writeRepeatingByte(0, count: bytes)
            return out
        }
        // Every connection announces a 4 MiB frame, one after the other.
        for link in links {
            try? await link.write(announce(65536))
            await pause(0.002)
        }
        await pause(1)
        try sample()
        // Refusals arrive as an error frame, then the close.
        var refused: [Int: String] = [:], texts: [String] = []
        for (i, link) in links.enumerated() {
            guard let first = try await link.answer(within: 0.05) else { continue }
            refused[i] = first.map { $0.errorCode.map(String.init) ?? "frame type \($0.message.type)" } ?? "closed"
            texts += first.map { [$0.summary] } ?? []
            _ = try await link.untilClosed(within: 3, or: "connection \(i) (\(peers[i])) got \(refused[i]!) but was not closed within 3 s")
        }
        try sample()
        let accepted = links.indices.filter { refused[$0] == nil }
        // The accepted ones send all of their frame but the last 4 KiB.
        for i in accepted {
            do { try await links[i].write(ByteBuffer(repeating: 0, count: payload - 4096 - 65536)) } catch {
                throw CheckFailed("connection \(i) (\(peers[i])) within the budget failed while sending its frame: \(error)")
            }
            try sample()
        }
        await pause(0.5)
        try sample()
        var still = 0
        for i in accepted { if try await links[i].answer(within: 0.01) == nil { still += 1 } }
        note("budget: \(accepted.count) connections hold a 4 MiB frame, \(refused.count) refused with codes \(Set(refused.values).sorted()); "
             + "edge RSS peak \(fmt(peak.rss, 0)) MB, HWM \(fmt(peak.hwm, 0)) MB; first refusal: \(texts.first ?? "-")")
        let limit = "\(ErrorCode.limitReached.rawValue)"
        if let i = refused.keys.sorted().first(where: { refused[$0] != limit }) {
            throw CheckFailed("\(refused.values.filter { $0 != limit }.count) refused connections got no limitReached error, "
                              + "e.g. connection \(i) (\(peers[i])): \(refused[i]!)")
        }
        try require(accepted.count <= expected, "\(accepted.count) connections buffer a 4 MiB frame, the budgets allow \(expected)")
        try require(still == accepted.count, "\(accepted.count - still) connections within the budget were closed")
        try require(peak.rss < maxRssMb && peak.hwm < maxRssMb,
                    "edge VmRSS peaked at \(fmt(peak.rss, 0)) MB (VmHWM \(fmt(peak.hwm, 0)) MB), not under \(fmt(maxRssMb, 0)) MB")
        try require(!accepted.isEmpty, "no connection could buffer a frame: the budget admits nothing")
        links.forEach { $0.hardClose() }
        await pause(0.5)
        // The budget is free again once those connections closed.
        links = [try await cluster.authenticated(as: peers[0], server: server, fingerprint: fingerprint)]
        try await links[0].write(announce(1 << 20))
        if let answer = try await links[0].answer(within: 1) {
            throw CheckFailed("after every connection closed, a new 4 MiB frame was refused: \(answer?.summary ?? "connection closed")")
        }
        print("\(accepted.count) of \(connections) connections buffer a 4 MiB frame, \(refused.count) refused with error \(limit); "
              + "edge VmRSS peak \(fmt(peak.rss, 0)) MB, VmHWM \(fmt(peak.hwm, 0)) MB (start \(fmt(start.rss, 0)) MB)")
    }
}
