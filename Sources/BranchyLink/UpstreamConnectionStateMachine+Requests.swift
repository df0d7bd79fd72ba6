import BranchyWire
import NIOCore

/// Requests, `statsRequest`s and the frames that answer them.
extension UpstreamConnectionStateMachine {
    /// A request to send upstream. It gets the tighter of the link's deadline and its own, running
    /// from now, queueing included; it is written at once while the window has room, else queued.
    public mutating func requestSubmitted(_ request: InferRequest) -> Submission {
        guard isReady, case (var c, _)? = takeConnection() else {
            if case .stopped = state { return .refused(.unavailable("link stopped")) }
            return .refused(.unavailable("not connected to \(configuration.upstreamName)"))
        }
        defer { put(c, .ready) }
        guard c.requests.inFlight.count < maxInFlight || c.requests.waiting.count < maxQueued else {
            return .refused(.overloaded(c.requests.waiting.count))
        }
        let id = c.requests.allocateID()
        let ms = linkDeadline(linkMillis: deadlineMillis, requestMillis: request.deadlineMillis)
        let due = clock() + .milliseconds(Int64(ms))
        if c.requests.inFlight.count >= maxInFlight {
            c.requests.enqueue(id, .init(request: request, due: due, deadlineMillis: ms), maxQueued: maxQueued)
            return .accepted(id: id, due: due, actions: [])
        }
        return .accepted(id: id, due: due, actions: transmit(id, request, due: due, deadlineMillis: ms, on: &c))
    }

    /// The oldest queued request, written, when the window has room for it (or failed, when its
    /// frame cannot be sent); nil when the window is full, nothing is queued or the link is not ready.
    public mutating func transmitNextQueued() -> [Action]? {
        guard isReady, case (var c, _)? = takeConnection() else { return nil }
        defer { put(c, .ready) }
        guard c.requests.inFlight.count < maxInFlight, let (id, q) = c.requests.dequeue() else { return nil }
        return transmit(id, q.request, due: q.due, deadlineMillis: q.deadlineMillis, on: &c)
    }

    /// Writes request `id` with what is left of its deadline, so that the next hop gives up in time.
    /// A frame the encoder would refuse (say, features that overflowed to infinity) fails this
    /// request alone, not the encoder and with it every request on the connection; its id is not reused.
    private mutating func transmit(_ id: UInt64, _ request: InferRequest, due: NIODeadline, deadlineMillis ms: Int,
                                   on c: inout Connection) -> [Action] {
        var req = request
        req.deadlineMillis = UInt32(max(1, (due - clock()).nanoseconds / 1_000_000))
        let frame = Frame(requestID: id, message: .infer(req))
        do {
            try frame.validate(dialect: c.dialect)
        } catch {
            return [.fail([id], .remote(ErrorFrame(code: .badTensor, message: "features not sendable: \(error)")))]
        }
        c.requests.inFlight[id] = .init(sent: clock(), requestFrameBytes: frame.encodedSize(in: c.dialect), deadlineMillis: ms)
        c.requests.unflushed.append(id)
        guard !flushScheduled else { return [.write(frame)] }
        flushScheduled = true
        return [.write(frame), .scheduleFlush]
    }

    /// The scheduled flush is due: the ids of the requests written since the last one, in order.
    public mutating func flushTimerFired() -> [UInt64] {
        flushScheduled = false
        guard case (var c, let phase)? = takeConnection() else { return [] }
        let ids = c.requests.unflushed
        c.requests.unflushed.removeAll(keepingCapacity: true)
        put(c, phase)
        return ids
    }

    /// The flush of `ids` put `measuredBytes` on the socket, below TLS. Each frame is its own TLS
    /// record, so each request gets the record layout's size, and the last one what is left, so
    /// that the shares add up to the measured total.
    public mutating func flushed(_ ids: [UInt64], measuredBytes: Int) {
        guard case (var c, let phase)? = takeConnection() else { return }
        defer { put(c, phase) }
        var left = measuredBytes
        for (k, id) in ids.enumerated() {
            guard let frameBytes = c.requests.inFlight[id]?.requestFrameBytes else { continue }
            let share = k == ids.count - 1 ? max(0, left) : min(max(0, left), TLSRecordOverhead.wireBytes(forFrame: frameBytes))
            c.requests.inFlight[id]!.requestTLSBytes = share
            left -= share
        }
    }

    /// The deadline of request `id` passed, in flight or still queued. A queued one was never
    /// sent: its id is reused. One in flight may still be answered: its id is not.
    public mutating func deadlineFired(_ id: UInt64) -> [Action] {
        guard case (var c, let phase)? = takeConnection() else { return [] }
        defer { put(c, phase) }
        if let q = c.requests.removeQueued(id) { return [.fail([id], .deadline(q.deadlineMillis)), .releaseID(id)] }
        guard let p = c.requests.inFlight.removeValue(forKey: id) else { return [] }  // answered meanwhile
        return [.fail([id], .deadline(p.deadlineMillis)), .drainQueue]
    }

    /// Hands `id` back for reuse, once the completion that freed it was delivered: a request sent
    /// from within that completion got another id.
    public mutating func releaseID(_ id: UInt64) {
        guard case (var c, let phase)? = takeConnection() else { return }
        c.requests.release(id)
        put(c, phase)
    }

    // MARK: - Stats

    /// A `statsRequest` (version 2 only), sharing the requests' ids.
    public mutating func statsRequested(timeoutMillis: Int64) -> StatsSubmission {
        guard isReady, connection?.dialect.isCompact == true, case (var c, _)? = takeConnection() else {
            return .refused(.unavailable("no version 2 connection to \(configuration.upstreamName)"))
        }
        defer { put(c, .ready) }
        let id = c.requests.allocateID()
        c.requests.statsWaiters[id] = Int(timeoutMillis)
        return .accepted(id: id, connection: c.number, actions: [.writeAndFlush(Frame(requestID: id, message: .statsRequest))])
    }

    /// The timeout of `statsRequest` `id` sent on connection number `connection` passed. Only that
    /// connection's request fails: after a reconnect the id may belong to another. Its id is not reused.
    public mutating func statsTimedOut(_ id: UInt64, connection: UInt64) -> [Action] {
        guard case (var c, let phase)? = takeConnection() else { return [] }
        defer { put(c, phase) }
        guard c.number == connection, let ms = c.requests.statsWaiters.removeValue(forKey: id) else { return [] }
        return [.failStats([id], .deadline(ms))]
    }

    // MARK: - Frames

    /// A frame from upstream other than helloAck (see `helloAckReceived(_:bytesCounted:)`).
    /// Frames before the certificate was checked are dropped.
    public mutating func frameReceived(_ frame: Frame) -> [Action] {
        guard connection?.verified == true else { return [] }
        let (id, name, endpoint) = (frame.requestID, configuration.upstreamName, configuration.endpoint)
        switch frame.message {
        case .result(let r):
            if let problem = Self.problem(with: r, configuration: configuration) {
                // A peer that lies about what it answered: the sample is not answered from it, and the
                // connection, which can no longer be trusted, is dropped (its other requests fail over).
                let log = Action.log(.error, "upstream \(name) at \(endpoint) sent an impossible result for request \(id): \(problem); closing")
                return [log] + complete(id, .failure(.invalidAnswer(problem))) + [.close]
            }
            let done = complete(id, .success((r, frame.encodedSize(in: connection?.dialect ?? .open))))
            return done.isEmpty ? [] : done + [.releaseID(id)]
        case .stats(let links):
            guard case (var c, let phase)? = takeConnection() else { return [] }
            defer { put(c, phase) }
            guard c.requests.statsWaiters.removeValue(forKey: id) != nil else { return [] }
            c.requests.release(id)
            return [.answerStats(id, links)]
        case .error(let e) where id != 0 && connection?.requests.statsWaiters[id] != nil:
            guard case (var c, let phase)? = takeConnection() else { return [] }
            c.requests.release(id)
            c.requests.statsWaiters[id] = nil
            put(c, phase)
            return [.failStats([id], .remote(e))]
        case .error(let e) where id != 0:
            let done = complete(id, .failure(.remote(e)))
            return done.isEmpty ? [] : done + [.releaseID(id)]
        case .error(let e):
            return [.log(.error, "upstream \(name) refused the connection: \(String(describing: e).escapedForLog(limit: 512))")]
        case .goodbye:
            if case (let c, let phase)? = takeConnection() { put(c, phase == .ready ? .goingAway : phase) }
            return [.log(.info, "upstream \(name) at \(endpoint) is draining or closing an idle connection")]
        default:
            return [.log(.warning, "unexpected \(frame.message.type) frame from upstream \(name)")]
        }
    }

    /// Completes request `id` if it is in flight (late or unknown ids were already answered):
    /// the completion, then the queue drained into the room it left.
    private mutating func complete(_ id: UInt64, _ outcome: Result<(InferResult, Int), UpstreamFailure>) -> [Action] {
        guard case (var c, let phase)? = takeConnection() else { return [] }
        defer { put(c, phase) }
        guard let p = c.requests.inFlight.removeValue(forKey: id) else { return [] }
        switch outcome {
        case .success(let (result, responseFrameBytes)):
            let cost = HopCost(link: configuration.linkName, requestFrameBytes: UInt64(p.requestFrameBytes),
                               responseFrameBytes: UInt64(responseFrameBytes), requestTLSBytes: UInt64(p.requestTLSBytes),
                               responseTLSBytes: UInt64(TLSRecordOverhead.wireBytes(forFrame: responseFrameBytes)))
            let nanos = UInt64(max(0, (clock() - p.sent).nanoseconds))
            return [.succeed(id, UpstreamReply(result: result, cost: cost), answeredNanos: nanos), .drainQueue]
        case .failure(let f):
            return [.fail([id], f), .drainQueue]
        }
    }

    /// Why `r` cannot be an answer from upstream of a node whose next exit is `firstUpstreamExit`,
    /// for a model with `exitNames` and `classCount` classes; nil when it can.
    public static func problem(with r: InferResult, exitNames: [String], classCount: Int, firstUpstreamExit: Int) -> String? {
        let exit = Int(r.exitIndex)
        guard exit >= firstUpstreamExit, exit < exitNames.count else {
            return "field exitIndex is \(exit), expected \(firstUpstreamExit)...\(exitNames.count - 1) (the exits upstream of this node)"
        }
        guard r.exitName == exitNames[exit] else {
            return "field exitName is '\(r.exitName.escapedForLog(limit: 64))', expected '\(exitNames[exit])' for exit \(exit)"
        }
        guard Int(r.predictedClass) < classCount else {
            return "field predictedClass is \(r.predictedClass), expected 0...\(classCount - 1)"
        }
        return nil
    }

    /// `problem(with:exitNames:classCount:firstUpstreamExit:)` for the configured model.
    public static func problem(with r: InferResult, configuration c: Configuration) -> String? {
        problem(with: r, exitNames: c.exitNames, classCount: c.classCount, firstUpstreamExit: c.firstUpstreamExit)
    }
}
