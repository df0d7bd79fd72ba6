/// The protocol logic of one accepted connection, as a pure value.
///
/// The caller feeds it events (frames received, responses sent, drain requested,
/// connection closed) and carries out the ``Action`` each one returns. It performs no
/// I/O, so every rule can be tested without sockets.
///
/// States: `awaitingHello` → `ready` → `draining` → `closed`. Any `sendError(close: true)`
/// action moves straight to `closed`.
public struct ServerConnectionStateMachine: Sendable {
    /// A peer as named in its hello: node name and role.
    public struct PeerIdentity: Hashable, Sendable, CustomStringConvertible {
        /// The node name from the hello.
        public var name: String
        /// The role from the hello.
        public var role: NodeRole

        /// Creates an identity.
        public init(name: String, role: NodeRole) {
            self.name = name
            self.role = role
        }

        /// Role and name, the name escaped for logs (it comes from the peer).
        public var description: String { "\(role) '\(name.escapedForLog(limit: 64))'" }
    }

    /// What the server accepts on this port.
    public struct Configuration: Sendable {
        /// This node's own hello, sent back as `helloAck`. Its fingerprint and protocol
        /// version are the ones a client must match.
        public var localHello: Hello
        /// The peers allowed to connect to this port.
        public var allowedPeers: Set<PeerIdentity>
        /// Every other node of the cluster with its role. A peer named after one of them that
        /// is not allowed on this port gets ``ErrorCode/wrongRole`` rather than ``ErrorCode/unknownNode``.
        public var knownNodes: [String: NodeRole]
        /// Most requests in flight on one connection; one more is answered with
        /// ``ErrorCode/tooManyRequests``.
        public var maxInFlight: Int

        /// Creates a configuration; `maxInFlight` must be at least 1.
        public init(localHello: Hello, allowedPeers: Set<PeerIdentity>, knownNodes: [String: NodeRole] = [:],
                    maxInFlight: Int = 64) {
            precondition(maxInFlight >= 1, "maxInFlight must be at least 1, got \(maxInFlight)")
            self.localHello = localHello
            self.allowedPeers = allowedPeers
            self.knownNodes = knownNodes
            self.maxInFlight = maxInFlight
        }
    }

    /// Where the connection is in its life.
    public enum State: Hashable, Sendable {
        /// Connected; nothing but a hello is acceptable.
        case awaitingHello
        /// Handshake done; requests are accepted.
        case ready(peer: PeerIdentity)
        /// No new requests; close once the ones in flight are answered.
        case draining(peer: PeerIdentity?)
        /// Closing or closed; every further event is ignored.
        case closed
    }

    /// What the caller must do after an event.
    public enum Action: Hashable, Sendable {
        /// Nothing.
        case none
        /// Send `helloAck` with this payload (request id 0).
        case sendHelloAck(Hello)
        /// Run (or forward upstream) the request; answer it later and then call
        /// ``sentResponse(requestID:)``.
        case forwardRequest(requestID: UInt64)
        /// Send this error with this request id; if `close`, flush and close the connection.
        case sendError(requestID: UInt64, ErrorFrame, close: Bool)
        /// Send `goodbye` (request id 0); if `thenClose`, flush and close the connection.
        case sendGoodbye(thenClose: Bool)
        /// Close the connection.
        case close
        /// The connection is gone: abandon these forwarded requests that were never answered.
        case abandonRequests([UInt64])
        /// Answer `statsRequest` `requestID` with this node's upstream link totals, then call
        /// ``sentResponse(requestID:)`` as for any answer.
        case sendStats(requestID: UInt64)
    }

    /// The configuration given at creation.
    public let configuration: Configuration
    /// The current state.
    public private(set) var state: State = .awaitingHello
    /// Request ids forwarded and not yet answered.
    public private(set) var inFlight: Set<UInt64> = []

    /// Creates a machine for a freshly accepted connection.
    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Number of requests forwarded and not yet answered.
    public var inFlightCount: Int { inFlight.count }

    /// True when the window is full: a caller applying back-pressure stops reading.
    public var isAtCapacity: Bool { inFlight.count >= configuration.maxInFlight }

    /// The peer, once its hello was accepted.
    public var peer: PeerIdentity? {
        switch state {
        case .ready(let peer): return peer
        case .draining(let peer): return peer
        case .awaitingHello, .closed: return nil
        }
    }

    /// Dispatches a decoded frame to the matching event.
    public mutating func receivedFrame(_ frame: Frame) -> Action {
        switch frame.message {
        case .hello(let hello):
            guard frame.requestID == 0 else {
                return fail(.badFrame, "hello must carry request id 0, got \(frame.requestID)")
            }
            return receivedHello(hello)
        case .infer:
            return receivedInfer(requestID: frame.requestID)
        case .goodbye:
            // Only a server says goodbye; a client that is done just closes.
            return fail(.unexpectedMessage, "a server does not accept goodbye frames; a client closes the connection instead")
        case .error:
            // A client has nothing to report to a server but its own failure: it is going away.
            if case .closed = state { return .none }
            state = .closed
            return .close
        case .helloAck, .result, .stats:
            return fail(.unexpectedMessage, "a server does not accept \(frame.message.type) frames")
        case .statsRequest:
            switch state {
            case .awaitingHello: return fail(.handshakeRequired, "statsRequest sent before hello")
            case .closed: return .none
            case .ready, .draining:
                guard frame.requestID != 0 else { return fail(.badFrame, "request id 0 is reserved for connection-level frames") }
                // Ids are unique per connection across every kind of request; a stats answer holds a
                // place in the window until it is written, like any other answer.
                if inFlight.contains(frame.requestID) {
                    return .sendError(requestID: frame.requestID,
                                      ErrorFrame(code: .duplicateRequestID, message: "request id \(frame.requestID) is already in flight"),
                                      close: false)
                }
                if isAtCapacity {
                    return .sendError(requestID: frame.requestID,
                                      ErrorFrame(code: .tooManyRequests,
                                                 message: "\(inFlight.count) requests in flight, limit is \(configuration.maxInFlight)"),
                                      close: false)
                }
                inFlight.insert(frame.requestID)
                return .sendStats(requestID: frame.requestID)
            }
        }
    }

    /// The peer sent a hello.
    public mutating func receivedHello(_ hello: Hello) -> Action {
        switch state {
        case .awaitingHello:
            break
        case .ready, .draining:
            return fail(.duplicateHello, "hello already received on this connection")
        case .closed:
            return .none
        }
        let local = configuration.localHello
        let supported = FrameDialect.supportedVersions
        guard hello.protocolVersion >= UInt16(supported.lowerBound), hello.protocolVersion <= min(UInt16(supported.upperBound), local.protocolVersion) else {
            return fail(.unsupportedVersion,
                        "protocol version \(hello.protocolVersion) not supported, this node speaks versions \(supported.lowerBound) to \(min(UInt16(supported.upperBound), local.protocolVersion))")
        }
        let name = hello.nodeName.escapedForLog(limit: 64)
        // Names travel from servers to clients only: a client's hello carries an empty table.
        guard hello.names.names.isEmpty else {
            return fail(.badFrame, "peer '\(name)' sent a hello with \(hello.names.names.count) names; a client's hello carries none")
        }
        guard hello.fingerprint == local.fingerprint else {
            return fail(.fingerprintMismatch,
                        "peer '\(name)' runs model \(hello.fingerprint), this node runs \(local.fingerprint)")
        }
        let identity = PeerIdentity(name: hello.nodeName, role: hello.role)
        guard configuration.allowedPeers.contains(identity) else {
            let roles = configuration.allowedPeers.filter { $0.name == hello.nodeName }.map(\.role.description).sorted()
            if !roles.isEmpty {
                return fail(.wrongRole, "node '\(name)' claims role \(hello.role), allowed here as \(roles.joined(separator: ", "))")
            }
            if let role = configuration.knownNodes[hello.nodeName] {
                return fail(.wrongRole, "node '\(name)' is the cluster's \(role) and does not connect to this port as \(hello.role)")
            }
            return fail(.unknownNode, "node '\(name)' is not allowed on this port")
        }
        state = .ready(peer: identity)
        // The acknowledgement speaks the client's version; the names table travels in version 2 only.
        var ack = local
        ack.protocolVersion = hello.protocolVersion
        if hello.protocolVersion < 2 { ack.names = .empty }
        return .sendHelloAck(ack)
    }

    /// The peer sent an `infer` with this request id.
    public mutating func receivedInfer(requestID: UInt64) -> Action {
        switch state {
        case .awaitingHello:
            return fail(.handshakeRequired, "request \(requestID) sent before hello")
        case .closed:
            return .none
        case .draining:
            return .sendError(requestID: requestID,
                              ErrorFrame(code: .shuttingDown, message: "server is draining, request \(requestID) refused"),
                              close: false)
        case .ready:
            break
        }
        if requestID == 0 {
            return fail(.badFrame, "request id 0 is reserved for connection-level frames")
        }
        if inFlight.contains(requestID) {
            return .sendError(requestID: requestID,
                              ErrorFrame(code: .duplicateRequestID, message: "request id \(requestID) is already in flight"),
                              close: false)
        }
        if isAtCapacity {
            return .sendError(requestID: requestID,
                              ErrorFrame(code: .tooManyRequests,
                                         message: "\(inFlight.count) requests in flight, limit is \(configuration.maxInFlight)"),
                              close: false)
        }
        inFlight.insert(requestID)
        return .forwardRequest(requestID: requestID)
    }

    /// The connection sent nothing for the idle timeout. With nothing in flight, the server
    /// says goodbye and closes; with requests in flight it waits for them.
    public mutating func idleTimeoutPassed() -> Action {
        switch state {
        case .ready:
            guard inFlight.isEmpty else { return .none }
            state = .closed
            return .sendGoodbye(thenClose: true)
        case .awaitingHello:
            state = .closed
            return .close
        case .draining, .closed:
            return .none
        }
    }

    /// The handshake timeout passed: a connection still without a successful hello is closed.
    public mutating func handshakeTimeoutPassed() -> Action {
        guard case .awaitingHello = state else { return .none }
        state = .closed
        return .close
    }

    /// The node refuses the peer after its hello was accepted (say, too many connections for its
    /// identity): send the error and close.
    public mutating func refuse(_ code: ErrorCode, _ message: String) -> Action {
        fail(code, message)
    }

    /// The answer (result or error) to a forwarded request was written.
    ///
    /// Call this only for ids that got ``Action/forwardRequest(requestID:)``, not after
    /// sending an error this machine produced itself.
    public mutating func sentResponse(requestID: UInt64) -> Action {
        guard inFlight.remove(requestID) != nil else { return .none }
        if case .draining = state { return closeIfIdle() }
        return .none
    }

    /// The server wants to shut down: refuse new requests, answer the ones in flight, close.
    public mutating func beginDrain() -> Action {
        switch state {
        case .awaitingHello:
            state = .closed
            return .sendGoodbye(thenClose: true)
        case .ready(let peer):
            state = .draining(peer: peer)
            if inFlight.isEmpty {
                state = .closed
                return .sendGoodbye(thenClose: true)
            }
            return .sendGoodbye(thenClose: false)
        case .draining, .closed:
            return .none
        }
    }

    /// The decoder rejected the byte stream; framing is lost.
    public mutating func decodingFailed(_ error: WireError) -> Action {
        fail(error.errorCode, error.description)
    }

    /// The connection closed, for whatever reason.
    public mutating func connectionClosed() -> Action {
        state = .closed
        let pending = inFlight.sorted()
        inFlight.removeAll()
        return pending.isEmpty ? .none : .abandonRequests(pending)
    }

    private mutating func fail(_ code: ErrorCode, _ message: String) -> Action {
        if case .closed = state { return .none }
        state = .closed
        return .sendError(requestID: 0, ErrorFrame(code: code, message: message), close: true)
    }

    private mutating func closeIfIdle() -> Action {
        guard inFlight.isEmpty else { return .none }
        state = .closed
        return .close
    }
}
