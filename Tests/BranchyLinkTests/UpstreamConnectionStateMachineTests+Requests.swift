import BranchyWire
import NIOCore
import Testing
@testable import BranchyLink

/// Requests, `statsRequest`s and the frames that answer them.
extension UpstreamConnectionStateMachineTests {
    // MARK: - Requests

    @Test func requestsWhenNotReadyFail() {
        var m = Self.machine(ManualClock())
        #expect(m.requestSubmitted(Self.request(1)) == .refused(.unavailable("not connected to edge")))
        _ = m.start()
        #expect(m.requestSubmitted(Self.request(1)) == .refused(.unavailable("not connected to edge")))
        _ = m.connected()
        #expect(m.requestSubmitted(Self.request(1)) == .refused(.unavailable("not connected to edge")))
        _ = m.stop()
        #expect(m.requestSubmitted(Self.request(1)) == .refused(.unavailable("link stopped")))
    }

    @Test func requestsAreWrittenWithTheirDeadlineLeftAndFlushedOncePerTurn() throws {
        let clock = ManualClock()
        var m = Self.ready(clock, maxInFlight: 4, deadlineMillis: 1_000)
        let first = Self.request(1), second = Self.request(2, deadlineMillis: 300), third = Self.request(3, deadlineMillis: 5_000)
        let a = try Self.submit(&m, first)
        #expect(a.id == 1 && a.due == clock.now + .milliseconds(1_000))
        #expect(a.actions == [.write(Self.frame(1, first, left: 1_000)), .scheduleFlush])
        clock.advance(millis: 1)
        let b = try Self.submit(&m, second)
        #expect(b.id == 2 && b.due == clock.now + .milliseconds(300))
        #expect(b.actions == [.write(Self.frame(2, second, left: 300))])
        let c = try Self.submit(&m, third)
        #expect(c.actions == [.write(Self.frame(3, third, left: 1_000))])
        #expect(m.flushTimerFired() == [1, 2, 3])
        #expect(!m.flushScheduled)
        // Each request but the last gets its record's size; the last what is left.
        let sizes = [Self.frame(1, first, left: 1_000), Self.frame(2, second, left: 300), Self.frame(3, third, left: 1_000)].map {
            TLSRecordOverhead.wireBytes(forFrame: $0.encodedSize(in: .v2(names: Self.names)))
        }
        m.flushed([1, 2, 3], measuredBytes: sizes[0] + sizes[1] + 50)
        let tls = [1, 2, 3].map { m.connection?.requests.inFlight[UInt64($0)]?.requestTLSBytes }
        #expect(tls == [sizes[0], sizes[1], 50])
        #expect(m.flushTimerFired() == [])
        #expect(try Self.submit(&m, first).actions.last == .scheduleFlush)
    }

    @Test func aFullWindowQueuesAndAFullQueueRefuses() throws {
        var m = Self.ready(ManualClock(), maxInFlight: 1)
        #expect(try Self.submit(&m, Self.request(0)).actions.count == 2)
        for i in 1...16 {
            let s = try Self.submit(&m, Self.request(UInt64(i)))
            #expect(s.id == UInt64(i + 1) && s.actions == [])
        }
        #expect(m.outstanding == (1, 16))
        #expect(m.requestSubmitted(Self.request(99)) == .refused(.overloaded(16)))
        #expect(m.transmitNextQueued() == nil)  // the window is full
    }

    @Test func anAnswerCompletesItsRequestFreesItsIdAndMovesTheQueue() throws {
        let clock = ManualClock()
        var m = Self.ready(clock, maxInFlight: 1)
        let first = try Self.submit(&m, Self.request(1))
        _ = m.flushTimerFired()
        m.flushed([first.id], measuredBytes: 200)
        let queued = try Self.submit(&m, Self.request(2))
        clock.advance(millis: 7)
        let answer = Frame(requestID: first.id, message: .result(Self.result))
        let responseBytes = answer.encodedSize(in: .v2(names: Self.names))
        let requestBytes = Self.frame(1, Self.request(1), left: 1_000).encodedSize(in: .v2(names: Self.names))
        let cost = HopCost(link: "device->edge", requestFrameBytes: UInt64(requestBytes), responseFrameBytes: UInt64(responseBytes),
                           requestTLSBytes: 200, responseTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: responseBytes)))
        #expect(m.frameReceived(answer) == [
            .succeed(first.id, UpstreamReply(result: Self.result, cost: cost), answeredNanos: 7_000_000), .drainQueue, .releaseID(first.id),
        ])
        #expect(m.transmitNextQueued() == [.write(Self.frame(queued.id, Self.request(2), left: 993)), .scheduleFlush])
        #expect(m.transmitNextQueued() == nil)
        // A request sent from within the completion, before the id is released, gets a new one.
        #expect(try Self.submit(&m, Self.request(3)).id == 3)
        m.releaseID(first.id)
        #expect(try Self.submit(&m, Self.request(4)).id == first.id)
        #expect(m.frameReceived(answer) == [])  // answered already
    }

    @Test func deadlinesFailQueuedRequestsAndRequestsInFlight() throws {
        let clock = ManualClock()
        var m = Self.ready(clock, maxInFlight: 1, deadlineMillis: 500)
        let inFlight = try Self.submit(&m, Self.request(1))
        let queued = try Self.submit(&m, Self.request(2, deadlineMillis: 200))
        // Queued: never sent, so its id is used again.
        #expect(m.deadlineFired(queued.id) == [.fail([queued.id], .deadline(200)), .releaseID(queued.id)])
        m.releaseID(queued.id)
        #expect(m.outstanding == (1, 0))
        // In flight: its answer may still come, so its id is not used again.
        #expect(m.deadlineFired(inFlight.id) == [.fail([inFlight.id], .deadline(500)), .drainQueue])
        #expect(m.deadlineFired(inFlight.id) == [])
        #expect(try Self.submit(&m, Self.request(3)).id == queued.id)
        #expect(try Self.submit(&m, Self.request(4)).id == 3)
        #expect(m.frameReceived(Frame(requestID: inFlight.id, message: .result(Self.result))) == [])
    }

    @Test func aRequestWhoseFrameCannotBeSentFailsAlone() throws {
        var m = Self.ready(ManualClock())
        let bad = try Self.submit(&m, Self.request(1, value: .infinity))
        guard case .fail(let ids, .remote(let e)) = bad.actions.first, bad.actions.count == 1 else {
            Issue.record("expected a failure, got \(bad.actions)")
            return
        }
        #expect(ids == [bad.id] && e.code == .badTensor && e.message.hasPrefix("features not sendable: "))
        #expect(m.outstanding == (0, 0))
        #expect(try Self.submit(&m, Self.request(2)).id == bad.id + 1)
    }

    @Test func anImpossibleResultFailsItsRequestAndClosesTheConnection() throws {
        var m = Self.ready(ManualClock())
        let s = try Self.submit(&m, Self.request(1))
        var r = Self.result
        r.exitIndex = 0
        let problem = "field exitIndex is 0, expected 1...2 (the exits upstream of this node)"
        #expect(m.frameReceived(Frame(requestID: s.id, message: .result(r))) == [
            .log(.error, "upstream edge at \(Self.endpoint) sent an impossible result for request \(s.id): \(problem); closing"),
            .fail([s.id], .invalidAnswer(problem)), .drainQueue, .close,
        ])
        #expect(try Self.submit(&m, Self.request(2)).id == s.id + 1)
    }

    @Test func errorFramesFailTheirRequestOrStatsRequestOrAreLogged() throws {
        var m = Self.ready(ManualClock())
        let s = try Self.submit(&m, Self.request(1))
        let e = ErrorFrame(code: .tooManyRequests, message: "busy")
        #expect(m.frameReceived(Frame(requestID: s.id, message: .error(e))) == [.fail([s.id], .remote(e)), .drainQueue, .releaseID(s.id)])
        #expect(m.frameReceived(Frame(requestID: 77, message: .error(e))) == [])
        guard case .accepted(let statsID, _, _) = m.statsRequested(timeoutMillis: 100) else { Issue.record("stats refused"); return }
        #expect(m.frameReceived(Frame(requestID: statsID, message: .error(e))) == [.failStats([statsID], .remote(e))])
        #expect(m.connection?.requests.freeIDs == [statsID])
        let fatal = ErrorFrame(code: .unknownNode, message: "who?")
        #expect(m.frameReceived(Frame(requestID: 0, message: .error(fatal))) == [
            .log(.error, "upstream edge refused the connection: \(String(describing: fatal).escapedForLog(limit: 512))"),
        ])
        #expect(m.frameReceived(Frame(requestID: 0, message: .statsRequest)) == [.log(.warning, "unexpected statsRequest frame from upstream edge")])
        #expect(m.isReady)
    }

    @Test func goodbyeTakesNoNewRequestsButAnswersThoseInFlight() throws {
        var m = Self.ready(ManualClock(), maxInFlight: 1)
        let inFlight = try Self.submit(&m, Self.request(1))
        let queued = try Self.submit(&m, Self.request(2))
        #expect(m.frameReceived(Frame(requestID: 0, message: .goodbye)) == [
            .log(.info, "upstream edge at \(Self.endpoint) is draining or closing an idle connection"),
        ])
        #expect(Self.state(m) == "goingAway" && !m.isReady)
        #expect(m.requestSubmitted(Self.request(3)) == .refused(.unavailable("not connected to edge")))
        #expect(m.statsRequested(timeoutMillis: 100) == .refused(.unavailable("no version 2 connection to edge")))
        let answered = m.frameReceived(Frame(requestID: inFlight.id, message: .result(Self.result)))
        #expect(answered.count == 3 && answered.last == .releaseID(inFlight.id))
        #expect(m.transmitNextQueued() == nil)  // queued requests wait for their deadline or the close
        #expect(m.outstanding == (0, 1))
        // A helloAck again makes the connection ready; the queue moves.
        #expect(m.helloAckReceived(Self.ack(), bytesCounted: 0).last == .drainQueue)
        #expect(m.transmitNextQueued()?.first == .write(Self.frame(queued.id, Self.request(2), left: 1_000)))
    }

    @Test func reconfigureWidensTheWindowAndDrainsTheQueue() throws {
        var m = Self.ready(ManualClock(), maxInFlight: 1)
        _ = try Self.submit(&m, Self.request(1))
        let a = try Self.submit(&m, Self.request(2)), b = try Self.submit(&m, Self.request(3))
        #expect(m.reconfigure(maxInFlight: 3, deadlineMillis: 700) == [.drainQueue])
        #expect(m.maxQueued == 48 && m.deadlineMillis == 700)
        #expect(m.transmitNextQueued()?.first == .write(Self.frame(a.id, Self.request(2), left: 1_000)))
        #expect(m.transmitNextQueued()?.first == .write(Self.frame(b.id, Self.request(3), left: 1_000)))
        #expect(m.transmitNextQueued() == nil)
        #expect(try Self.submit(&m, Self.request(4)).due == m.clock() + .milliseconds(700))
    }

    // MARK: - Stats

    @Test func statsRequestsAreAnsweredOrTimeOut() {
        var m = Self.ready(ManualClock())
        guard case .accepted(let id, let connection, let actions) = m.statsRequested(timeoutMillis: 250) else { Issue.record("refused"); return }
        #expect(actions == [.writeAndFlush(Frame(requestID: id, message: .statsRequest))] && connection == 1)
        let links = [LinkTotals(link: "edge->cloud", connections: 1, handshakeBytes: 2, bytesSent: 3, bytesReceived: 4)]
        #expect(m.frameReceived(Frame(requestID: id, message: .stats(links))) == [.answerStats(id, links)])
        #expect(m.frameReceived(Frame(requestID: id, message: .stats(links))) == [])
        guard case .accepted(let again, _, _) = m.statsRequested(timeoutMillis: 250) else { Issue.record("refused"); return }
        #expect(again == id)  // answered: its id is used again
        #expect(m.statsTimedOut(again, connection: 2) == [])  // another connection's
        #expect(m.statsTimedOut(again, connection: 1) == [.failStats([again], .deadline(250))])
        #expect(m.statsTimedOut(again, connection: 1) == [])
        guard case .accepted(let third, _, _) = m.statsRequested(timeoutMillis: 250) else { Issue.record("refused"); return }
        #expect(third == again + 1)  // timed out: its answer may still come
        var v1 = Self.ready(ManualClock(), version: 1)
        #expect(v1.isReady)
        #expect(v1.statsRequested(timeoutMillis: 250) == .refused(.unavailable("no version 2 connection to edge")))
    }
}
