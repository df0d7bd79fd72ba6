import NIOConcurrencyHelpers
import NIOCore

/// The open connections of a server: how many there are, which peer identity each one
/// authenticated as, and which to give up when the node is full.
///
/// Shared by every event loop of the server, so its state sits behind a lock (`NIOLockedValueBox`: a pthread mutex, which ThreadSanitizer understands); channels are
/// closed by the caller, outside the lock.
public final class ConnectionRegistry: Sendable {
    /// Why a connection was not admitted.
    public enum Refusal: Error, CustomStringConvertible {
        case draining
        case full(Int)

        public var description: String {
            switch self {
            case .draining: return "the node is draining"
            case .full(let n): return "\(n) connections are open, all authenticated"
            }
        }
    }

    private struct Entry {
        let channel: any Channel
        let opened: NIODeadline
        var peer: String?
        /// Whether requests of this connection are in flight.
        var busy = false
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var perPeer: [String: Int] = [:]
        var nextID: UInt64 = 1
        var draining = false
    }

    /// Most open connections.
    public let maxConnections: Int
    /// Most connections per peer identity.
    public let maxPerPeer: Int
    private let state = NIOLockedValueBox(State())

    public init(maxConnections: Int, maxPerPeer: Int) {
        self.maxConnections = max(1, maxConnections)
        self.maxPerPeer = max(1, maxPerPeer)
    }

    /// Number of open connections.
    public var count: Int { state.withLockedValue { $0.entries.count } }

    /// Number of connections that authenticated as `peer`.
    public func count(of peer: String) -> Int { state.withLockedValue { $0.perPeer[peer] ?? 0 } }

    /// Authenticated connections per link (`peer->node`), for the connections gauge.
    public func authenticatedCounts(into node: String) -> [String: Int] {
        state.withLockedValue { s in
            var out: [String: Int] = [:]
            for (peer, n) in s.perPeer { out["\(peer)->\(node)"] = n }
            return out
        }
    }

    /// Admits a new connection. When the node is full, the oldest connection without a
    /// successful hello is removed and returned in `shed` for the caller to close; authenticated
    /// connections are never given up for a newcomer, so when all are authenticated it is refused.
    public func admit(_ channel: any Channel) -> Result<(id: UInt64, shed: (channel: any Channel, peer: String?)?), Refusal> {
        state.withLockedValue { s in
            if s.draining { return .failure(.draining) }
            var shed: (channel: any Channel, peer: String?)? = nil
            if s.entries.count >= maxConnections {
                guard let victim = s.entries.filter({ $0.value.peer == nil }).min(by: { $0.value.opened < $1.value.opened })?.key else {
                    return .failure(.full(s.entries.count))
                }
                let peer = s.entries[victim]?.peer
                shed = Self.remove(victim, from: &s).map { ($0, peer) }
            }
            let id = s.nextID
            s.nextID += 1
            s.entries[id] = Entry(channel: channel, opened: .now())
            return .success((id, shed))
        }
    }

    /// Records that connection `id` said hello as `peer`. False when `peer` already holds
    /// `maxPerPeer` connections.
    public func authenticate(_ id: UInt64, as peer: String) -> Bool {
        state.withLockedValue { s in
            guard s.entries[id] != nil else { return false }
            let held = s.perPeer[peer] ?? 0
            guard held < maxPerPeer else { return false }
            s.perPeer[peer] = held + 1
            s.entries[id]?.peer = peer
            return true
        }
    }

    /// Connection `id` now has requests in flight (`busy`) or none. Call on changes only.
    public func setBusy(_ id: UInt64, _ busy: Bool) {
        state.withLockedValue { $0.entries[id]?.busy = busy }
    }

    /// Forgets connection `id` (it closed).
    public func remove(_ id: UInt64) {
        state.withLockedValue { s in _ = Self.remove(id, from: &s) }
    }

    /// Removes and returns up to `count` connections to close so that others can be accepted:
    /// unauthenticated ones first, then authenticated ones with nothing in flight, oldest first.
    public func shed(_ count: Int) -> [any Channel] {
        state.withLockedValue { s in
            Self.victims(in: s, count: count).compactMap { Self.remove($0, from: &s) }
        }
    }

    /// Stops admitting and returns every open connection.
    public func beginDrain() -> [any Channel] {
        state.withLockedValue { s in
            s.draining = true
            return s.entries.values.map(\.channel)
        }
    }

    /// Every open connection.
    public func all() -> [any Channel] { state.withLockedValue { $0.entries.values.map(\.channel) } }

    private static func victims(in s: State, count: Int) -> [UInt64] {
        let unauthenticated = s.entries.filter { $0.value.peer == nil }.sorted { $0.value.opened < $1.value.opened }
        let idle = s.entries.filter { $0.value.peer != nil && !$0.value.busy }.sorted { $0.value.opened < $1.value.opened }
        return Array((unauthenticated + idle).prefix(count).map(\.key))
    }

    private static func remove(_ id: UInt64, from s: inout State) -> (any Channel)? {
        guard let entry = s.entries.removeValue(forKey: id) else { return nil }
        if let peer = entry.peer {
            let left = (s.perPeer[peer] ?? 1) - 1
            s.perPeer[peer] = left > 0 ? left : nil
        }
        return entry.channel
    }
}
