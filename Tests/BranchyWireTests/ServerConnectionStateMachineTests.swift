import Testing
@testable import BranchyWire

private typealias Machine = ServerConnectionStateMachine

private let edgeHello = Hello(role: .edge, nodeName: "edge-1", fingerprint: Fixtures.fingerprint)
private let device = Machine.PeerIdentity(name: "device-0", role: .device)

private func machine(maxInFlight: Int = 4) -> Machine {
    Machine(configuration: .init(
        localHello: edgeHello,
        allowedPeers: [device, .init(name: "device-1", role: .device)],
        maxInFlight: maxInFlight))
}

private func hello(_ name: String = "device-0", role: NodeRole = .device,
                   fingerprint: ModelFingerprint = Fixtures.fingerprint, version: UInt16 = 1) -> Hello {
    Hello(protocolVersion: version, role: role, nodeName: name, fingerprint: fingerprint)
}

private func ready(maxInFlight: Int = 4) -> Machine {
    var m = machine(maxInFlight: maxInFlight)
    _ = m.receivedHello(hello())
    return m
}

/// The message of a `sendError` action.
private func errorMessage(_ action: Machine.Action) -> String? {
    if case .sendError(_, let frame, _) = action { return frame.message }
    return nil
}

/// The code and close flag of a `sendError` action, for compact assertions.
private func errorInfo(_ action: Machine.Action) -> (id: UInt64, code: ErrorCode, close: Bool)? {
    if case .sendError(let id, let frame, let close) = action { return (id, frame.code, close) }
    return nil
}

@Suite("ServerConnectionStateMachine")
struct ServerConnectionStateMachineTests {
    @Test func helloIsAcknowledgedWithTheLocalHello() {
        var m = machine()
        #expect(m.state == .awaitingHello)
        #expect(m.receivedHello(hello()) == .sendHelloAck(edgeHello))
        #expect(m.state == .ready(peer: device))
        #expect(m.peer == device)
    }

    @Test func requestBeforeHelloClosesWithHandshakeRequired() {
        var m = machine()
        let info = errorInfo(m.receivedInfer(requestID: 5))
        #expect(info?.id == 0)
        #expect(info?.code == .handshakeRequired)
        #expect(info?.close == true)
        #expect(m.state == .closed)
        #expect(m.receivedHello(hello()) == .none)
    }

    @Test func secondHelloClosesWithDuplicateHello() {
        var m = ready()
        let info = errorInfo(m.receivedHello(hello()))
        #expect(info?.code == .duplicateHello)
        #expect(info?.close == true)
        #expect(m.state == .closed)
    }

    @Test func fingerprintMismatchCloses() {
        var m = machine()
        let action = m.receivedHello(hello(fingerprint: Fixtures.otherFingerprint))
        #expect(errorInfo(action)?.code == .fingerprintMismatch)
        #expect(errorInfo(action)?.close == true)
        if case .sendError(_, let frame, _) = action {
            #expect(frame.message.contains(Fixtures.otherFingerprint.hex))
        }
        #expect(m.state == .closed)
    }

    @Test func unknownNameClosesWithUnknownNode() {
        var m = machine()
        #expect(errorInfo(m.receivedHello(hello("intruder")))?.code == .unknownNode)
        #expect(m.state == .closed)
    }

    @Test func knownNameWithWrongRoleClosesWithWrongRole() {
        var m = machine()
        let action = m.receivedHello(hello("device-0", role: .cloud))
        #expect(errorInfo(action)?.code == .wrongRole)
        #expect(errorInfo(action)?.close == true)
    }

    @Test func unsupportedProtocolVersionCloses() {
        var m = machine()
        #expect(errorInfo(m.receivedHello(hello(version: 2)))?.code == .unsupportedVersion)
        #expect(m.state == .closed)
    }

    @Test func requestsAreForwardedAndTracked() {
        var m = ready()
        #expect(m.receivedInfer(requestID: 1) == .forwardRequest(requestID: 1))
        #expect(m.receivedInfer(requestID: 2) == .forwardRequest(requestID: 2))
        #expect(m.inFlight == [1, 2])
        #expect(m.sentResponse(requestID: 2) == .none)
        #expect(m.inFlight == [1])
        // Answers may go out in any order; an unknown id is ignored.
        #expect(m.sentResponse(requestID: 99) == .none)
        #expect(m.sentResponse(requestID: 1) == .none)
        #expect(m.inFlightCount == 0)
    }

    @Test func reusedRequestIDIsRefusedWithoutClosing() {
        var m = ready()
        _ = m.receivedInfer(requestID: 7)
        let info = errorInfo(m.receivedInfer(requestID: 7))
        #expect(info?.id == 7)
        #expect(info?.code == .duplicateRequestID)
        #expect(info?.close == false)
        #expect(m.inFlight == [7])
        // Once answered, the id may be used again.
        _ = m.sentResponse(requestID: 7)
        #expect(m.receivedInfer(requestID: 7) == .forwardRequest(requestID: 7))
    }

    @Test func requestIDZeroIsAProtocolViolation() {
        var m = ready()
        let info = errorInfo(m.receivedInfer(requestID: 0))
        #expect(info?.code == .badFrame)
        #expect(info?.close == true)
    }

    @Test func inFlightWindowIsBounded() {
        var m = ready(maxInFlight: 2)
        _ = m.receivedInfer(requestID: 1)
        #expect(!m.isAtCapacity)
        _ = m.receivedInfer(requestID: 2)
        #expect(m.isAtCapacity)
        let info = errorInfo(m.receivedInfer(requestID: 3))
        #expect(info?.code == .tooManyRequests)
        #expect(info?.id == 3)
        #expect(info?.close == false)
        #expect(m.inFlightCount == 2)
        _ = m.sentResponse(requestID: 1)
        #expect(m.receivedInfer(requestID: 3) == .forwardRequest(requestID: 3))
    }

    @Test func drainingRefusesNewRequestsAndClosesWhenIdle() {
        var m = ready()
        _ = m.receivedInfer(requestID: 1)
        #expect(m.beginDrain() == .sendGoodbye(thenClose: false))
        #expect(m.state == .draining(peer: device))
        let info = errorInfo(m.receivedInfer(requestID: 2))
        #expect(info?.code == .shuttingDown)
        #expect(info?.close == false)
        #expect(m.beginDrain() == .none)
        #expect(m.sentResponse(requestID: 1) == .close)
        #expect(m.state == .closed)
    }

    @Test func drainingAnIdleConnectionClosesAtOnce() {
        var m = ready()
        #expect(m.beginDrain() == .sendGoodbye(thenClose: true))
        #expect(m.state == .closed)
        var fresh = machine()
        #expect(fresh.beginDrain() == .sendGoodbye(thenClose: true))
    }

    @Test func aClientGoodbyeIsAnUnexpectedMessage() {
        var m = ready()
        _ = m.receivedInfer(requestID: 1)
        let info = errorInfo(m.receivedFrame(Frame(requestID: 0, message: .goodbye)))
        #expect(info?.code == .unexpectedMessage)
        #expect(info?.close == true)
        #expect(m.state == .closed)
    }

    @Test func helloWithANonZeroRequestIDIsABadFrame() {
        var m = machine()
        let action = m.receivedFrame(Frame(requestID: 7, message: .hello(hello())))
        #expect(errorInfo(action)?.code == .badFrame)
        #expect(errorMessage(action)?.contains("request id 0") == true)
    }

    @Test func anotherKnownNodeGetsWrongRole() {
        var config = machine().configuration
        config.knownNodes = ["cloud": .cloud, "device-0": .device]
        var m = Machine(configuration: config)
        #expect(errorInfo(m.receivedHello(hello("cloud", role: .cloud)))?.code == .wrongRole)
        var n = Machine(configuration: config)
        #expect(errorInfo(n.receivedHello(hello("stranger")))?.code == .unknownNode)
    }

    @Test func controlCharactersInANodeNameAreEscapedInErrors() {
        var m = machine()
        let message = errorMessage(m.receivedHello(hello("x\n2026-01-01 critical: forged\u{1B}[31m\u{0}"))) ?? ""
        #expect(!message.contains("\n") && !message.contains("\u{1B}") && !message.contains("\u{0}"))
        #expect(message.contains("x\\n2026-01-01 critical: forged\\u{1B}[31m\\u{0}"))
    }

    @Test func idleTimeoutClosesOnlyWithNothingInFlight() {
        var m = ready()
        _ = m.receivedInfer(requestID: 1)
        #expect(m.idleTimeoutPassed() == .none)
        _ = m.sentResponse(requestID: 1)
        #expect(m.idleTimeoutPassed() == .sendGoodbye(thenClose: true))
        var fresh = machine()
        #expect(fresh.handshakeTimeoutPassed() == .close)
        var done = ready()
        #expect(done.handshakeTimeoutPassed() == .none)
    }

    @Test func framesAServerNeverAcceptsClose() {
        var m = ready()
        let info = errorInfo(m.receivedFrame(Frame(requestID: 1, message: .result(Fixtures.result))))
        #expect(info?.code == .unexpectedMessage)
        #expect(info?.close == true)
        var n = ready()
        #expect(errorInfo(n.receivedFrame(Frame(requestID: 0, message: .helloAck(edgeHello))))?.code == .unexpectedMessage)
    }

    @Test func peerErrorClosesTheConnection() {
        var m = ready()
        #expect(m.receivedFrame(Frame(requestID: 0, message: .error(ErrorFrame(code: .internalError, message: "")))) == .close)
        #expect(m.receivedFrame(Frame(requestID: 1, message: .infer(Fixtures.infer(.int8)))) == .none)
    }

    @Test func receivedFrameDispatches() {
        var m = machine()
        #expect(m.receivedFrame(Frame(requestID: 0, message: .hello(hello()))) == .sendHelloAck(edgeHello))
        #expect(m.receivedFrame(Frame(requestID: 9, message: .infer(Fixtures.infer(.float16)))) == .forwardRequest(requestID: 9))
    }

    @Test func decodingFailureMapsToAConnectionError() {
        var m = ready()
        let wire = WireError.invalidValue(message: .infer, field: "tensor.rank", value: "0", expected: "1...6")
        let action = m.decodingFailed(wire)
        #expect(errorInfo(action)?.code == .badTensor)
        #expect(errorInfo(action)?.id == 0)
        #expect(errorInfo(action)?.close == true)
        #expect(m.decodingFailed(.badMagic(0)) == .none)
    }

    @Test func closingAbandonsOutstandingRequests() {
        var m = ready()
        _ = m.receivedInfer(requestID: 3)
        _ = m.receivedInfer(requestID: 1)
        #expect(m.connectionClosed() == .abandonRequests([1, 3]))
        #expect(m.state == .closed)
        #expect(m.connectionClosed() == .none)
        #expect(m.sentResponse(requestID: 1) == .none)
    }
}

@Suite("ServerConnectionStateMachine, version 2")
struct ServerConnectionStateMachineVersion2Tests {
    static let names = NameTable(["device-0", "edge-1", "cloud"])
    fileprivate static func v2Machine(maxInFlight: Int = 4) -> Machine {
        var local = edgeHello
        local.protocolVersion = 2
        local.names = names
        return Machine(configuration: .init(localHello: local, allowedPeers: [device], maxInFlight: maxInFlight))
    }

    @Test func theAcknowledgementSpeaksTheClientsVersion() {
        var m = Self.v2Machine()
        guard case .sendHelloAck(let ack) = m.receivedHello(hello(version: 2)) else { Issue.record("no ack"); return }
        #expect(ack.protocolVersion == 2 && ack.names == Self.names)
        var old = Self.v2Machine()
        guard case .sendHelloAck(let ack1) = old.receivedHello(hello(version: 1)) else { Issue.record("no ack"); return }
        #expect(ack1.protocolVersion == 1 && ack1.names == .empty)
        var future = Self.v2Machine()
        #expect(errorInfo(future.receivedHello(hello(version: 3)))?.code == .unsupportedVersion)
    }

    @Test func statsRequestsAreAnsweredOnceReady() {
        var m = Self.v2Machine()
        #expect(errorInfo(m.receivedFrame(Frame(requestID: 5, message: .statsRequest)))?.code == .handshakeRequired)
        var r = Self.v2Machine()
        _ = r.receivedHello(hello(version: 2))
        #expect(r.receivedFrame(Frame(requestID: 5, message: .statsRequest)) == .sendStats(requestID: 5))
        #expect(errorInfo(r.receivedFrame(Frame(requestID: 0, message: .statsRequest)))?.code == .badFrame)
        var s = Self.v2Machine()
        _ = s.receivedHello(hello(version: 2))
        #expect(errorInfo(s.receivedFrame(Frame(requestID: 6, message: .stats([]))))?.code == .unexpectedMessage)
    }

    @Test func requestIDsAreUniqueAcrossInferAndStatsRequests() {
        var m = Self.v2Machine()
        _ = m.receivedHello(hello(version: 2))
        #expect(m.receivedInfer(requestID: 7) == .forwardRequest(requestID: 7))
        // A statsRequest reusing an id in flight is refused, and does not take the infer's place.
        #expect(errorInfo(m.receivedFrame(Frame(requestID: 7, message: .statsRequest)))?.code == .duplicateRequestID)
        #expect(m.inFlight == [7])
        // A stats answer holds its id until it is written.
        #expect(m.receivedFrame(Frame(requestID: 8, message: .statsRequest)) == .sendStats(requestID: 8))
        #expect(errorInfo(m.receivedInfer(requestID: 8))?.code == .duplicateRequestID)
        #expect(m.sentResponse(requestID: 8) == .none)
        #expect(m.receivedInfer(requestID: 8) == .forwardRequest(requestID: 8))
    }

    @Test func statsRequestsCountAgainstTheWindow() {
        var m = Self.v2Machine(maxInFlight: 2)
        _ = m.receivedHello(hello(version: 2))
        #expect(m.receivedFrame(Frame(requestID: 1, message: .statsRequest)) == .sendStats(requestID: 1))
        #expect(m.receivedInfer(requestID: 2) == .forwardRequest(requestID: 2))
        #expect(errorInfo(m.receivedFrame(Frame(requestID: 3, message: .statsRequest)))?.code == .tooManyRequests)
    }

    @Test func aClientHelloWithANamesTableIsRefused() {
        var m = Self.v2Machine()
        var h = hello(version: 2)
        h.names = NameTable(["device-0", "edge-1"])
        let action = m.receivedHello(h)
        #expect(errorInfo(action)?.code == .badFrame)
        #expect(errorMessage(action)?.contains("names") == true)
        #expect(m.state == .closed)
    }
}
