import BranchyTopology
import BranchyWire
import Logging
import NIOCore

/// The client side of an upstream link, as a value: dialling, the TLS name check, the hello,
/// requests with their ids, window, queue and deadlines, `statsRequest`s, heartbeats, `goodbye`,
/// reconnection with backoff, and stopping.
///
/// The caller (`UpstreamLink`) feeds it events and carries out the ``Action``s each returns, in
/// order. It holds no channel, promise or timer: those stay with the caller, keyed by request id.
/// Time and jitter come from the `clock` and `random` given at creation, so every rule can be
/// tested without sockets.
///
/// States: `idle` → `connecting` → `handshaking` → `ready` ⇄ `goingAway`; a failed dial or a
/// closed connection → `backingOff` → `connecting`; `stop()` → `stopped` from anywhere.
public struct UpstreamConnectionStateMachine {
    /// What the link dials and what it accepts from there.
    public struct Configuration: Sendable {
        /// The upstream node's name: its certificate and helloAck must carry it.
        public var upstreamName: String
        /// The upstream node's role: its helloAck must carry it.
        public var upstreamRole: BranchyTopology.NodeRole
        /// The address dialled, for messages.
        public var endpoint: Endpoint
        /// This node's hello; the helloAck must match its fingerprint and protocol version.
        public var local: Hello
        /// The link's name in costs and metrics, e.g. `"device->edge"`.
        public var linkName: String
        /// The model's exit names, in order, and its class count: what a result may name.
        public var exitNames: [String]
        public var classCount: Int
        /// The first exit upstream can answer from: the one after this node's last stage.
        public var firstUpstreamExit: Int
        /// The most a reconnection waits, in milliseconds.
        public var backoffCapMillis: Int

        public init(upstreamName: String, upstreamRole: BranchyTopology.NodeRole, endpoint: Endpoint, local: Hello, linkName: String,
                    exitNames: [String], classCount: Int, firstUpstreamExit: Int, backoffCapMillis: Int) {
            self.upstreamName = upstreamName
            self.upstreamRole = upstreamRole
            self.endpoint = endpoint
            self.local = local
            self.linkName = linkName
            self.exitNames = exitNames
            self.classCount = classCount
            self.firstUpstreamExit = firstUpstreamExit
            self.backoffCapMillis = backoffCapMillis
        }
    }

    /// What the machine knows of one connection, from TCP up to its close.
    public struct Connection: Sendable {
        /// The connection's number on this link (1 for the first): tags timers that must not
        /// act on a later connection.
        public let number: UInt64
        /// True once the server's certificate was found to name the upstream node. Until then
        /// every frame is dropped: TLS keeps delivering data while a close is under way.
        public var verified = false
        /// True once a helloAck was accepted on this connection.
        public var helloDone = false
        /// The frame layout, fixed by the helloAck.
        public var dialect = FrameDialect.open
        /// With heartbeats on: when the unanswered heartbeat was sent, if one is.
        public var heartbeatSent: NIODeadline?
        /// Ids, requests in flight and queued, `statsRequest`s awaiting an answer.
        public var requests = UpstreamRequestTable()
    }

    /// Where the link is in its life.
    public enum State: Sendable {
        /// Created; `start()` not called yet.
        case idle
        /// Dialling (TCP and TLS are set up by the caller).
        case connecting
        /// TCP up; TLS under way or done and the hello sent; waiting for the helloAck.
        case handshaking(Connection)
        /// The hello is done: requests are sent.
        case ready(Connection)
        /// Upstream said `goodbye`: no new requests; those in flight are still answered.
        case goingAway(Connection)
        /// Waiting to dial again after a failed dial or a closed connection.
        case backingOff
        /// No more connections; a connection still closing is kept until it is closed.
        case stopped(closing: Connection?)
        /// Transient, while a connection is changed in place (never seen between events).
        case modifying
    }

    public let configuration: Configuration
    /// The current state.
    private(set) var state: State = .idle
    /// The window, the queue behind it and the deadline: set at creation and by `reconfigure`.
    private(set) var maxInFlight: Int
    private(set) var maxQueued: Int
    private(set) var deadlineMillis: Int
    /// Backoff between dials; reset by a successful hello.
    private(set) var backoff: Backoff
    /// Successful hellos so far.
    public private(set) var connections = 0
    /// Bytes counted below TLS before each successful hello (TLS handshake and hello exchange).
    public private(set) var handshakeBytes: UInt64 = 0
    /// Bytes counted below TLS on connections already closed: received, sent.
    public private(set) var closedBytesIn: UInt64 = 0
    public private(set) var closedBytesOut: UInt64 = 0
    /// Why the last dial failed or the last connection ended, until the next hello succeeds.
    public private(set) var lastProblem: String?
    /// True while a flush is scheduled (set and cleared by the request events).
    public var flushScheduled = false
    /// Connections made so far (TCP up), numbering them.
    private var connectionsMade: UInt64 = 0
    /// The time, for deadlines, answer latencies and heartbeats.
    public let clock: @Sendable () -> NIODeadline
    private let random: @Sendable () -> Double

    /// Creates an idle machine. `clock` gives the time for deadlines and heartbeats, `random` the
    /// jitter of each backoff delay (in 0...1).
    public init(configuration: Configuration, maxInFlight: Int, deadlineMillis: Int,
         clock: @escaping @Sendable () -> NIODeadline = { .now() },
         random: @escaping @Sendable () -> Double = { .random(in: 0...1) }) {
        self.configuration = configuration
        self.maxInFlight = maxInFlight
        self.maxQueued = maxInFlight * 16
        self.deadlineMillis = deadlineMillis
        self.backoff = Backoff(maxMillis: configuration.backoffCapMillis)
        self.clock = clock
        self.random = random
    }

    /// True while connected with the hello done and not told to go away.
    public var isReady: Bool {
        if case .ready = state { return true }
        return false
    }

    /// The current connection, if there is one (closing after `stop()` included).
    public var connection: Connection? {
        switch state {
        case .handshaking(let c), .ready(let c), .goingAway(let c), .stopped(closing: let c?): return c
        case .idle, .connecting, .backingOff, .stopped(closing: nil), .modifying: return nil
        }
    }

    /// Requests sent and unanswered, and queued behind the window.
    public var outstanding: (inFlight: Int, queued: Int) {
        guard let requests = connection?.requests else { return (0, 0) }
        return (requests.inFlight.count, requests.waiting.count)
    }

    /// The hello this node sends once TLS is up.
    public var helloFrame: Frame { Frame(requestID: 0, message: .hello(configuration.local)) }

    private var upstreamName: String { configuration.upstreamName }
    private var endpoint: Endpoint { configuration.endpoint }

    // MARK: - Dialling and the handshake

    /// Starts dialling. Only an idle machine starts.
    public mutating func start() -> [Action] {
        guard case .idle = state else { return [] }
        state = .connecting
        return [.connect]
    }

    /// The backoff delay passed: dial again, unless stopped meanwhile.
    public mutating func reconnectTimerFired() -> [Action] {
        guard case .backingOff = state else { return [] }
        state = .connecting
        return [.connect]
    }

    /// The dial succeeded: TCP is up and TLS begins. A connection that comes up after `stop()` is closed.
    public mutating func connected() -> [Action] {
        connectionsMade += 1
        let c = Connection(number: connectionsMade)
        switch state {
        case .connecting:
            state = .handshaking(c)
            return []
        case .stopped(closing: nil):
            state = .stopped(closing: c)
            return [.close]
        default:
            preconditionFailure("connected() while \(state): the link dials only from .connecting")
        }
    }

    /// The dial failed: back off and dial again, unless stopped.
    public mutating func connectFailed(_ error: any Error) -> [Action] {
        switch state {
        case .connecting:
            return backOff(reason: "connect to \(upstreamName) at \(endpoint) failed: \(error)")
        case .stopped:
            return []
        default:
            preconditionFailure("connectFailed() while \(state): the link dials only from .connecting")
        }
    }

    /// The TLS handshake finished: the certificate must name the upstream node, whatever address
    /// was dialled. Then the hello goes out.
    public mutating func tlsHandshakeCompleted(peerNames: [String]) -> [Action] {
        guard peerNames.contains(upstreamName) else {
            let shown = peerNames.isEmpty ? "no DNS name" : peerNames.map { $0.escapedForLog(limit: 64) }.joined(separator: ", ")
            return [.log(.error, "upstream at \(endpoint) presented a certificate for \(shown), not for '\(upstreamName)'; closing"), .close]
        }
        guard case (var c, let phase)? = takeConnection() else { return [] }
        c.verified = true
        put(c, phase)
        return [.writeAndFlush(helloFrame)]
    }

    /// The upstream answered the hello. `bytesCounted` is what crossed the socket so far, both ways.
    /// A helloAck for another node, model or version closes the connection.
    public mutating func helloAckReceived(_ ack: Hello, bytesCounted: UInt64) -> [Action] {
        guard connection?.verified == true else { return [] }
        if let problem = Self.problem(withAck: ack, configuration: configuration) {
            return [.log(.error, "\(problem); closing"), .close]
        }
        guard case (var c, let phase)? = takeConnection() else { return [] }
        c.dialect = .after(version: ack.protocolVersion, names: ack.names)
        c.helloDone = true
        // Upstream may send helloAck again on a connection it said goodbye on: ready again, as before.
        put(c, phase == .stopped ? .stopped : .ready)
        connections += 1
        handshakeBytes += bytesCounted
        backoff.reset()
        lastProblem = nil
        return [.handshakeSucceeded, .log(.info, "connected to \(configuration.upstreamRole) '\(upstreamName)' at \(endpoint)"),
                .succeedReadyWaiters, .drainQueue]
    }

    /// Applies a reloaded node's window and deadline to requests sent from now on; a wider window
    /// takes queued requests at once.
    public mutating func reconfigure(maxInFlight: Int, deadlineMillis: Int) -> [Action] {
        self.maxInFlight = maxInFlight
        self.maxQueued = maxInFlight * 16
        self.deadlineMillis = deadlineMillis
        return [.drainQueue]
    }

    // MARK: - Closing and stopping

    /// The connection closed, with `bytesIn` and `bytesOut` counted on it below TLS. Everything
    /// on it fails; the link dials again after a backoff delay unless stopped.
    public mutating func connectionClosed(bytesIn: UInt64, bytesOut: UInt64) -> [Action] {
        closedBytesIn += bytesIn
        closedBytesOut += bytesOut
        let c: Connection
        var wasReady = false, stopped = false
        switch state {
        case .handshaking(let x), .goingAway(let x): c = x
        case .ready(let x): (c, wasReady) = (x, true)
        case .stopped(closing: let x?): (c, stopped) = (x, true)
        default: preconditionFailure("connectionClosed() while \(state): no connection")
        }
        state = stopped ? .stopped(closing: nil) : .modifying
        var actions: [Action] = c.helloDone ? [] : [.handshakeFailed]
        var requests = c.requests
        let lost = UpstreamFailure.unavailable("connection to \(upstreamName) lost")
        let ids = requests.removeAllRequests()
        if !ids.isEmpty { actions.append(.fail(ids, lost)) }
        if !requests.statsWaiters.isEmpty { actions.append(.failStats(Array(requests.statsWaiters.keys), lost)) }
        if stopped { return actions }
        if wasReady { actions.append(.log(.warning, "connection to \(upstreamName) at \(endpoint) closed")) }
        return actions + backOff(reason: "no connection to \(upstreamName) at \(endpoint)")
    }

    /// Stops dialling, fails every request in flight or queued and closes the connection.
    /// `statsRequest`s on a connection still closing fail when it is closed.
    public mutating func stop() -> [Action] {
        guard case (var c, _)? = takeConnection() else {
            state = .stopped(closing: nil)
            return []
        }
        let ids = c.requests.removeAllRequests()
        put(c, .stopped)
        return (ids.isEmpty ? [] : [.fail(ids, .unavailable("link stopped"))]) + [.close]
    }

    // MARK: - Heartbeats

    /// The heartbeat timer fired. While ready over version 2: sends a heartbeat, or closes the
    /// connection when the last one stayed unanswered for `timeoutMillis`.
    public mutating func heartbeatTimerFired(timeoutMillis: Int64) -> [Action] {
        switch state {
        case .stopped:
            return [.cancelHeartbeat]
        case .ready(var c) where c.dialect.isCompact:
            let now = clock()
            state = .modifying
            defer { state = .ready(c) }
            if let sent = c.heartbeatSent {
                guard now - sent >= .milliseconds(timeoutMillis) else { return [] }
                c.heartbeatSent = nil
                return [.log(.warning, "upstream \(upstreamName) at \(endpoint) did not answer a heartbeat within \(timeoutMillis) ms; closing"),
                        .close]
            }
            c.heartbeatSent = now
            return [.sendHeartbeat(timeoutMillis: timeoutMillis * 2)]
        default:
            if case (var c, let phase)? = takeConnection() {
                c.heartbeatSent = nil
                put(c, phase)
            }
            return []
        }
    }

    /// The last heartbeat was answered.
    public mutating func heartbeatAnswered() {
        guard case (var c, let phase)? = takeConnection() else { return }
        c.heartbeatSent = nil
        put(c, phase)
    }

    // MARK: - Helpers

    /// The states that hold a connection.
    public enum Phase: Sendable { case handshaking, ready, goingAway, stopped }

    /// Takes the current connection out of `state` (leaving `.modifying`), so that it is changed
    /// in place rather than copied; `put(_:_:)` puts it back.
    public mutating func takeConnection() -> (Connection, Phase)? {
        switch state {
        case .handshaking(let c): state = .modifying; return (c, .handshaking)
        case .ready(let c): state = .modifying; return (c, .ready)
        case .goingAway(let c): state = .modifying; return (c, .goingAway)
        case .stopped(closing: let c?): state = .modifying; return (c, .stopped)
        case .idle, .connecting, .backingOff, .stopped(closing: nil), .modifying: return nil
        }
    }

    /// Puts `c` back as the connection of the state `phase`.
    public mutating func put(_ c: Connection, _ phase: Phase) {
        switch phase {
        case .handshaking: state = .handshaking(c)
        case .ready: state = .ready(c)
        case .goingAway: state = .goingAway(c)
        case .stopped: state = .stopped(closing: c)
        }
    }

    /// Remembers `reason`, then waits out the next backoff delay (logged) before dialling again.
    private mutating func backOff(reason: String) -> [Action] {
        lastProblem = reason
        let delay = backoff.next(random: random())
        state = .backingOff
        return [.log(.warning, "\(reason); retrying in \(delay) ms"), .scheduleReconnect(delayMillis: delay)]
    }

    /// Why `ack` is not the helloAck of the configured upstream node, model and version; nil when it is.
    public static func problem(withAck ack: Hello, configuration: Configuration) -> String? {
        let (name, role, local) = (configuration.upstreamName, configuration.upstreamRole, configuration.local)
        guard ack.nodeName == name, ack.role == role.wireRole else {
            return "upstream answered as \(ack.role) '\(ack.nodeName.escapedForLog(limit: 64))', expected \(role) '\(name)'"
        }
        guard ack.fingerprint == local.fingerprint else {
            return "upstream '\(name)' runs model \(ack.fingerprint.hex.prefix(16)), this node \(local.fingerprint.hex.prefix(16))"
        }
        guard ack.protocolVersion == local.protocolVersion else {
            return "upstream '\(name)' answered in protocol version \(ack.protocolVersion), this node asked for \(local.protocolVersion)"
        }
        return nil
    }
}
