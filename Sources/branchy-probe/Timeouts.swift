import ArgumentParser
import BranchyWire

/// Three connections at once: raw TCP, TLS with NODE's certificate and no hello, and TLS + hello then
/// idle. The first two must be closed within HANDSHAKE_MS (+ margin) of connecting, the third must get
/// `goodbye` and be closed IDLE_MS (+ margin) after its hello, and not before.
struct Timeouts: Check {
    static let configuration = CommandConfiguration(abstract: "Checks the handshake and idle timeouts of a listening node.")
    @OptionGroup var peer: Peer
    @Argument var handshakeMs: Int
    @Argument var idleMs: Int
    @Argument var marginMs: Int

    func check() async throws {
        let (handshake, idle, margin) = (Double(handshakeMs) / 1000, Double(idleMs) / 1000, Double(marginMs) / 1000)
        let wait = handshake + idle + margin + 3
        let cluster = peer.cluster
        /// When `link` was closed, counted from `t0` (nil: still open after `wait`), and when it got goodbye.
        func closing(_ link: Link, from t0: Double) async throws -> (closed: Double?, goodbye: Double?) {
            defer { link.hardClose() }
            var goodbye: Double?
            do {
                while let frame = try await link.frame(within: max(0.001, t0 + wait - monotonic())) {
                    if case .goodbye = frame.message, goodbye == nil { goodbye = monotonic() - t0 }
                }
                return (monotonic() - t0, goodbye)
            } catch is StillOpen { return (nil, goodbye) }
        }
        async let raw = closing(try await Link.open(cluster.address(), tls: nil), from: monotonic())
        async let tls = { let t0 = monotonic(); return try await closing(cluster.connect(as: peer.node, server: peer.server), from: t0) }()
        async let idling = {
            let link = try await cluster.authenticated(as: peer.node, server: peer.server, fingerprint: peer.fingerprint)
            return try await closing(link, from: monotonic())
        }()
        let results = try await (raw: raw, tls: tls, idle: idling)
        let at = { (t: Double?) in t.map { "\(fmt($0)) s" } ?? "never" }
        note("timeouts: raw TCP closed \(at(results.raw.closed)), TLS without hello closed \(at(results.tls.closed)), idle after hello "
             + "got goodbye \(at(results.idle.goodbye)) and was closed \(at(results.idle.closed))")
        let low = 0.1   // timers may fire a little before our clock says so
        for (closed, what) in [(results.raw.closed, "raw TCP connection"), (results.tls.closed, "TLS connection without hello")] {
            guard let t = closed else { throw CheckFailed("\(what) still open after \(fmt(wait, 1)) s (handshakeTimeoutMs \(handshakeMs))") }
            try require(handshake - low <= t && t <= handshake + margin,
                        "\(what) closed after \(fmt(t)) s, expected \(fmt(handshake, 1)) s to \(fmt(handshake + margin, 1)) s")
        }
        guard let t = results.idle.closed else {
            throw CheckFailed("connection idle after hello still open after \(fmt(wait, 1)) s (idleTimeoutMs \(idleMs))")
        }
        guard let goodbye = results.idle.goodbye else {
            throw CheckFailed("connection idle after hello closed after \(fmt(t)) s without a goodbye frame")
        }
        try require(idle - low <= t && t <= idle + margin,
                    "connection idle after hello closed after \(fmt(t)) s, expected \(fmt(idle, 1)) s to \(fmt(idle + margin, 1)) s")
        print("raw TCP closed after \(fmt(results.raw.closed!)) s, TLS without hello after \(fmt(results.tls.closed!)) s "
              + "(handshake timeout \(fmt(handshake, 1)) s); idle after hello: goodbye at \(fmt(goodbye)) s, closed at \(fmt(t)) s "
              + "(idle timeout \(fmt(idle, 1)) s)")
    }
}
