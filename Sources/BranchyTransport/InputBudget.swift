import NIOConcurrencyHelpers

/// The node-wide and per-peer bounds on bytes of incomplete frames held in memory.
///
/// A connection reserves the whole size of a frame as soon as its header shows the frame is
/// incomplete, and releases it when the frame is complete or the connection closes. So the
/// memory peers can pin with partial frames is bounded by `total`, whatever their number.
public final class InputBudget: Sendable {
    /// Why a reservation failed.
    public struct Exceeded: Error, CustomStringConvertible {
        public var description: String
    }

    /// Node-wide bound in bytes.
    public let total: Int
    /// Bound per peer identity in bytes.
    public let perPeer: Int
    private let state = NIOLockedValueBox<(used: Int, byPeer: [String: Int])>((0, [:]))

    public init(total: Int, perPeer: Int) {
        self.total = total
        self.perPeer = perPeer
    }

    /// Bytes reserved now, node-wide.
    public var used: Int { state.withLockedValue { $0.used } }

    /// Reserves `bytes` for `peer`, or throws naming the bound that would be exceeded.
    public func reserve(_ bytes: Int, peer: String) throws {
        try state.withLockedValue { s in
            let mine = s.byPeer[peer] ?? 0
            if mine + bytes > perPeer {
                throw Exceeded(description: "peer '\(peer)' would buffer \(mine + bytes) bytes of incomplete frames, "
                                   + "over its budget of \(perPeer) bytes")
            }
            if s.used + bytes > total {
                throw Exceeded(description: "the node would buffer \(s.used + bytes) bytes of incomplete frames "
                                   + "(\(s.used) in use and \(bytes) for this frame), over its budget of \(total) bytes")
            }
            s.used += bytes
            s.byPeer[peer] = mine + bytes
        }
    }

    /// Returns `bytes` reserved for `peer`.
    public func release(_ bytes: Int, peer: String) {
        state.withLockedValue { s in
            s.used -= bytes
            let left = (s.byPeer[peer] ?? bytes) - bytes
            s.byPeer[peer] = left > 0 ? left : nil
        }
    }
}
