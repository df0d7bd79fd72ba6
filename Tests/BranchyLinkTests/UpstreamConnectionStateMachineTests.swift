import BranchyTensor
import BranchyTopology
import BranchyWire
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import BranchyLink

/// Every transition of a link's client side, without sockets: the machine is fed events and its
/// actions are checked, with a clock that moves only when told to and fixed jitter.
@Suite struct UpstreamConnectionStateMachineTests {
    typealias Machine = UpstreamConnectionStateMachine

    /// A clock that stands still until advanced.
    final class ManualClock: Sendable {
        private let value = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(1_000_000_000))
        var now: NIODeadline { value.withLockedValue { $0 } }
        func advance(millis: Int64) { value.withLockedValue { $0 = $0 + .milliseconds(millis) } }
    }

    struct Failed: Error, CustomStringConvertible {
        var description: String { "refused" }
    }

    static let endpoint = Endpoint(host: "127.0.0.1", port: 9000)
    static let fingerprint = ModelFingerprint(bytes: (0..<32).map { UInt8($0) })!
    static let names = NameTable(["device-exit", "edge-exit", "cloud-exit"])

    static func configuration(version: UInt16 = 2) -> Machine.Configuration {
        Machine.Configuration(upstreamName: "edge", upstreamRole: .edge, endpoint: endpoint,
                              local: Hello(protocolVersion: version, role: .device, nodeName: "device", fingerprint: fingerprint),
                              linkName: "device->edge", exitNames: ["device-exit", "edge-exit", "cloud-exit"], classCount: 10,
                              firstUpstreamExit: 1, backoffCapMillis: 5_000)
    }

    static func ack(version: UInt16 = 2, name: String = "edge", role: BranchyWire.NodeRole = .edge,
                    fingerprint: ModelFingerprint = UpstreamConnectionStateMachineTests.fingerprint) -> Hello {
        Hello(protocolVersion: version, role: role, nodeName: name, fingerprint: fingerprint, names: version >= 2 ? names : .empty)
    }

    static func machine(_ clock: ManualClock, maxInFlight: Int = 2, deadlineMillis: Int = 1_000, version: UInt16 = 2,
                        random: Double = 1) -> Machine {
        Machine(configuration: configuration(version: version), maxInFlight: maxInFlight, deadlineMillis: deadlineMillis,
                clock: { clock.now }, random: { random })
    }

    /// A machine with the hello done.
    static func ready(_ clock: ManualClock, maxInFlight: Int = 2, deadlineMillis: Int = 1_000, version: UInt16 = 2) -> Machine {
        var m = machine(clock, maxInFlight: maxInFlight, deadlineMillis: deadlineMillis, version: version)
        _ = m.start()
        _ = m.connected()
        _ = m.tlsHandshakeCompleted(peerNames: ["edge"])
        _ = m.helloAckReceived(ack(version: version), bytesCounted: 1_000)
        return m
    }

    static func request(_ sample: UInt64, deadlineMillis: UInt32 = 0, value: Float = 1) -> InferRequest {
        InferRequest(sampleID: sample, deadlineMillis: deadlineMillis, stageIndex: 1,
                     tensor: Tensor(shape: [4], data: [value, 2, 3, 4]), codec: .float32)
    }

    static let result = InferResult(exitIndex: 1, exitName: "edge-exit", nodeName: "edge", predictedClass: 3, confidence: 0.9, entropy: 0.1)

    /// Submits `request`, expecting it taken; gives its id and actions.
    static func submit(_ m: inout Machine, _ request: InferRequest) throws -> (id: UInt64, due: NIODeadline, actions: [Machine.Action]) {
        guard case .accepted(let id, let due, let actions) = m.requestSubmitted(request) else { throw Failed() }
        return (id, due, actions)
    }

    /// The frame `m` writes for `request` as `id`, with `deadlineMillis` left.
    static func frame(_ id: UInt64, _ request: InferRequest, left deadlineMillis: UInt32) -> Frame {
        var r = request
        r.deadlineMillis = deadlineMillis
        return Frame(requestID: id, message: .infer(r))
    }

    static func state(_ m: Machine) -> String {
        switch m.state {
        case .idle: return "idle"
        case .connecting: return "connecting"
        case .handshaking: return "handshaking"
        case .ready: return "ready"
        case .goingAway: return "goingAway"
        case .backingOff: return "backingOff"
        case .stopped(let closing): return closing == nil ? "stopped" : "stopped(closing)"
        case .modifying: return "modifying"
        }
    }

    // MARK: - Dialling and the handshake

    @Test func startDialsOnceFromIdle() {
        var m = Self.machine(ManualClock())
        #expect(Self.state(m) == "idle")
        #expect(m.start() == [.connect])
        #expect(Self.state(m) == "connecting")
        #expect(m.start() == [])
        #expect(!m.isReady)
    }

    @Test func connectFailuresBackOffLongerEachTimeUntilAHelloSucceeds() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        var delays: [Int] = []
        for _ in 0..<4 {
            let actions = m.connectFailed(Failed())
            guard case .scheduleReconnect(let delay) = actions.last else { Issue.record("no reconnect in \(actions)"); return }
            #expect(actions.first == .log(.warning, "connect to edge at \(Self.endpoint) failed: refused; retrying in \(delay) ms"))
            #expect(Self.state(m) == "backingOff")
            #expect(m.lastProblem == "connect to edge at \(Self.endpoint) failed: refused")
            delays.append(delay)
            #expect(m.reconnectTimerFired() == [.connect])
            #expect(Self.state(m) == "connecting")
        }
        #expect(delays == [100, 200, 400, 800])
        _ = m.connected()
        _ = m.tlsHandshakeCompleted(peerNames: ["edge"])
        _ = m.helloAckReceived(Self.ack(), bytesCounted: 10)
        #expect(m.backoff.attempt == 0)
        #expect(m.lastProblem == nil)
        let actions = m.connectionClosed(bytesIn: 0, bytesOut: 0)
        #expect(actions.last == .scheduleReconnect(delayMillis: 100))
    }

    @Test func aConnectionStartsHandshakingAndDropsFramesUntilTheCertificateIsChecked() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        #expect(m.connected() == [])
        #expect(Self.state(m) == "handshaking")
        #expect(m.connection?.number == 1)
        #expect(m.frameReceived(Frame(requestID: 0, message: .goodbye)) == [])
        #expect(m.helloAckReceived(Self.ack(), bytesCounted: 10) == [])
        #expect(Self.state(m) == "handshaking")
        #expect(m.tlsHandshakeCompleted(peerNames: ["other", "edge"]) == [.writeAndFlush(Frame(requestID: 0, message: .hello(Self.configuration().local)))])
        #expect(m.connection?.verified == true)
    }

    @Test func aCertificateForAnotherNodeClosesTheConnection() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        _ = m.connected()
        #expect(m.tlsHandshakeCompleted(peerNames: ["cloud", "evil\nname"]) == [
            .log(.error, "upstream at \(Self.endpoint) presented a certificate for cloud, \("evil\nname".escapedForLog(limit: 64)), not for 'edge'; closing"),
            .close,
        ])
        #expect(m.tlsHandshakeCompleted(peerNames: []) == [
            .log(.error, "upstream at \(Self.endpoint) presented a certificate for no DNS name, not for 'edge'; closing"), .close,
        ])
        #expect(m.connection?.verified == false)
        #expect(m.helloAckReceived(Self.ack(), bytesCounted: 10) == [])
        #expect(m.connectionClosed(bytesIn: 5, bytesOut: 7).first == .handshakeFailed)
        #expect(m.closedBytesIn == 5 && m.closedBytesOut == 7)
    }

    @Test(arguments: [
        (UpstreamConnectionStateMachineTests.ack(name: "cloud"), "upstream answered as edge 'cloud', expected edge 'edge'"),
        (UpstreamConnectionStateMachineTests.ack(role: .cloud), "upstream answered as cloud 'edge', expected edge 'edge'"),
        (UpstreamConnectionStateMachineTests.ack(fingerprint: ModelFingerprint(bytes: [UInt8](repeating: 0xAB, count: 32))!),
         "upstream 'edge' runs model abababababababab, this node 0001020304050607"),
        (UpstreamConnectionStateMachineTests.ack(version: 1), "upstream 'edge' answered in protocol version 1, this node asked for 2"),
    ])
    func aWrongHelloAckClosesTheConnection(ack: Hello, problem: String) {
        var m = Self.machine(ManualClock())
        _ = m.start()
        _ = m.connected()
        _ = m.tlsHandshakeCompleted(peerNames: ["edge"])
        #expect(m.helloAckReceived(ack, bytesCounted: 10) == [.log(.error, "\(problem); closing"), .close])
        #expect(Self.state(m) == "handshaking")
        #expect(m.connections == 0 && m.handshakeBytes == 0)
    }

    @Test func aGoodHelloAckMakesTheLinkReady() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        _ = m.connected()
        _ = m.tlsHandshakeCompleted(peerNames: ["edge"])
        #expect(m.helloAckReceived(Self.ack(), bytesCounted: 1_234) == [
            .handshakeSucceeded, .log(.info, "connected to edge 'edge' at \(Self.endpoint)"), .succeedReadyWaiters, .drainQueue,
        ])
        #expect(m.isReady)
        #expect(m.connections == 1 && m.handshakeBytes == 1_234)
        #expect(m.connection?.dialect == .v2(names: Self.names))
        #expect(m.lastProblem == nil)
        #expect(m.transmitNextQueued() == nil)
    }

    // MARK: - Closing and stopping

    @Test func aClosedConnectionFailsEverythingAndDialsAgain() throws {
        var m = Self.ready(ManualClock(), maxInFlight: 1)
        let inFlight = try Self.submit(&m, Self.request(1))
        let queued = try Self.submit(&m, Self.request(2))
        guard case .accepted(let statsID, _, _) = m.statsRequested(timeoutMillis: 100) else { Issue.record("stats refused"); return }
        let lost = UpstreamFailure.unavailable("connection to edge lost")
        let actions = m.connectionClosed(bytesIn: 100, bytesOut: 200)
        guard case .fail(let ids, lost) = actions.first else { Issue.record("no failure in \(actions)"); return }
        #expect(Set(ids) == [inFlight.id, queued.id])
        #expect(Array(actions.dropFirst()) == [
            .failStats([statsID], lost),
            .log(.warning, "connection to edge at \(Self.endpoint) closed"),
            .log(.warning, "no connection to edge at \(Self.endpoint); retrying in 100 ms"),
            .scheduleReconnect(delayMillis: 100),
        ])
        #expect(Self.state(m) == "backingOff" && m.outstanding == (0, 0))
        #expect(m.lastProblem == "no connection to edge at \(Self.endpoint)")
        #expect((m.closedBytesIn, m.closedBytesOut) == (100, 200))
        // The next connection counts its ids from 1 again.
        _ = m.reconnectTimerFired()
        _ = m.connected()
        #expect(m.connection?.number == 2)
        _ = m.tlsHandshakeCompleted(peerNames: ["edge"])
        _ = m.helloAckReceived(Self.ack(), bytesCounted: 0)
        #expect(try Self.submit(&m, Self.request(3)).id == 1)
        #expect(m.connections == 2)
    }

    @Test func aConnectionClosedDuringTheHandshakeCountsAFailedHandshake() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        _ = m.connected()
        #expect(m.connectionClosed(bytesIn: 1, bytesOut: 2) == [
            .handshakeFailed,
            .log(.warning, "no connection to edge at \(Self.endpoint); retrying in 100 ms"),
            .scheduleReconnect(delayMillis: 100),
        ])
    }

    @Test func stopFailsEverythingAndNeverDialsAgain() throws {
        var m = Self.ready(ManualClock(), maxInFlight: 1)
        let inFlight = try Self.submit(&m, Self.request(1))
        let queued = try Self.submit(&m, Self.request(2))
        guard case .accepted(let statsID, _, _) = m.statsRequested(timeoutMillis: 100) else { Issue.record("stats refused"); return }
        let actions = m.stop()
        guard case .fail(let ids, .unavailable("link stopped")) = actions.first else { Issue.record("no failure in \(actions)"); return }
        #expect(Set(ids) == [inFlight.id, queued.id] && Array(actions.dropFirst()) == [.close])
        #expect(Self.state(m) == "stopped(closing)" && !m.isReady)
        #expect(m.heartbeatTimerFired(timeoutMillis: 100) == [.cancelHeartbeat])
        // The closing connection's statsRequests fail once it is closed; nothing is dialled.
        #expect(m.connectionClosed(bytesIn: 0, bytesOut: 0) == [.failStats([statsID], .unavailable("connection to edge lost"))])
        #expect(Self.state(m) == "stopped")
        #expect(m.reconnectTimerFired() == [] && m.start() == [] && m.stop() == [])
    }

    @Test func stopWhileDiallingClosesTheConnectionThatComesUp() {
        var m = Self.machine(ManualClock())
        _ = m.start()
        #expect(m.stop() == [])
        #expect(m.connectFailed(Failed()) == [])
        var n = Self.machine(ManualClock())
        _ = n.start()
        _ = n.stop()
        #expect(n.connected() == [.close])
        #expect(n.connectionClosed(bytesIn: 3, bytesOut: 4) == [.handshakeFailed])
        #expect(Self.state(n) == "stopped" && n.closedBytesOut == 4)
        var o = Self.machine(ManualClock())
        _ = o.start()
        _ = o.connectFailed(Failed())
        #expect(o.stop() == [])
        #expect(o.reconnectTimerFired() == [])
    }

    // MARK: - Heartbeats

    @Test func heartbeatsAreSentOneAtATimeAndAHungConnectionIsClosed() {
        let clock = ManualClock()
        var m = Self.ready(clock)
        #expect(m.heartbeatTimerFired(timeoutMillis: 2_000) == [.sendHeartbeat(timeoutMillis: 4_000)])
        clock.advance(millis: 1_999)
        #expect(m.heartbeatTimerFired(timeoutMillis: 2_000) == [])
        m.heartbeatAnswered()
        #expect(m.heartbeatTimerFired(timeoutMillis: 2_000) == [.sendHeartbeat(timeoutMillis: 4_000)])
        clock.advance(millis: 2_000)
        #expect(m.heartbeatTimerFired(timeoutMillis: 2_000) == [
            .log(.warning, "upstream edge at \(Self.endpoint) did not answer a heartbeat within 2000 ms; closing"), .close,
        ])
        #expect(m.connection?.heartbeatSent == nil)
        // Not ready, or version 1: nothing is sent.
        _ = m.heartbeatTimerFired(timeoutMillis: 2_000)
        _ = m.frameReceived(Frame(requestID: 0, message: .goodbye))
        #expect(m.heartbeatTimerFired(timeoutMillis: 2_000) == [])
        #expect(m.connection?.heartbeatSent == nil)
        var v1 = Self.ready(clock, version: 1)
        #expect(v1.heartbeatTimerFired(timeoutMillis: 2_000) == [])
        var idle = Self.machine(clock)
        #expect(idle.heartbeatTimerFired(timeoutMillis: 2_000) == [])
    }
}
