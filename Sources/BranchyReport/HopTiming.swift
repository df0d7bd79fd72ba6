import BranchyWire

/// Where a forwarded sample's time went on one link, from the timings its answers carried
/// (a run with timings asked for, `branchy-device --timings`): the round trip the sending node
/// measured, how long the far node held the request (queue, compute and its own upstream wait),
/// and the difference, request by request: what the link itself cost (TLS, the kernel's sockets,
/// the wake-ups of both ends).
public struct HopTiming: Codable, Sendable, Equatable {
    /// The link, e.g. `"device->edge"`.
    public var link: String
    /// Requests on the link whose answer carried timings.
    public var requests: Int
    /// From handing the request to the link to its answer, as the sending node measured it.
    public var roundTripMs: RunReport.Latency
    /// How long the node at the far end held the request, as it reported.
    public var heldMs: RunReport.Latency
    /// Round trip minus hold, request by request.
    public var linkMs: RunReport.Latency

    /// Every link's timings over `records`, in the order the links first appear; links whose hops
    /// carried no timing are left out.
    public static func of(_ records: [SampleRecord]) -> [HopTiming] {
        var order: [String] = []
        var hops: [String: [HopCost]] = [:]
        for r in records {
            for h in r.hops where h.roundTripMicros > 0 {
                if hops[h.link] == nil { order.append(h.link) }
                hops[h.link, default: []].append(h)
            }
        }
        return order.map { link in
            let hs = hops[link]!
            return HopTiming(link: link, requests: hs.count,
                             roundTripMs: RunReport.Latency(hs.map { Double($0.roundTripMicros) / 1000 }),
                             heldMs: RunReport.Latency(hs.map { Double($0.upstreamMicros) / 1000 }),
                             linkMs: RunReport.Latency(hs.map { Double($0.roundTripMicros) / 1000 - Double($0.upstreamMicros) / 1000 }))
        }
    }
}
