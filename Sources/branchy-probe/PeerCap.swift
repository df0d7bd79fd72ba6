import ArgumentParser
import BranchyWire

/// MAX_PER_PEER connections of NODE are accepted; one more gets error 17 (limitReached) and is closed.
struct PeerCap: Check {
    static let configuration = CommandConfiguration(abstract: "Checks that one connection past maxConnectionsPerPeer gets limitReached.")
    @OptionGroup var peer: Peer
    @Argument var maxPerPeer: Int

    func check() async throws {
        let (node, n) = (peer.node, maxPerPeer)
        var held: [Link] = []
        defer { held.forEach { $0.hardClose() } }
        for _ in 0..<n {
            held.append(try await peer.cluster.authenticated(as: node, server: peer.server, fingerprint: peer.fingerprint))
        }
        let link = try await peer.cluster.connect(as: node, server: peer.server)
        held.append(link)
        try await link.send(.hello(Hello(role: .device, nodeName: node, fingerprint: peer.fingerprint)))
        let frames = try await refusal(link, "hello number \(n + 1) of '\(node)'")
        let limit = ErrorCode.limitReached.rawValue
        try require(frames.first?.errorCode == limit, "hello number \(n + 1) of '\(node)' got \(frames[0].summary) before the close, "
                    + "expected error \(limit) (limitReached)")
        note("peer cap: \(frames[0].summary)")
        print("\(n) connections of '\(node)' accepted, the next refused with error \(limit)")
    }
}

/// The frames `link` gets until the server closes it, which must happen within `seconds`; the first
/// must be an error frame. `what` names the refused attempt in the reason.
func refusal(_ link: Link, _ what: String, within seconds: Double = 5) async throws -> [Frame] {
    let frames = try await link.untilClosed(within: seconds, or: "\(what) was not refused: the connection is still open after \(fmt(seconds, 0)) s")
    try require(frames.first?.errorCode != nil, "\(what) got frames \(frames.map(\.summary)) instead of an error, then the close")
    return frames
}
