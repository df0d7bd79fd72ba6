import BranchyWire
import Logging
import NIOCore

extension UpstreamConnectionStateMachine {
    /// What the caller must do after an event, in order.
    public enum Action: Hashable, Sendable {
        /// Dial the upstream; report `connected()` or `connectFailed(_:)`.
        case connect
        /// Call `reconnectTimerFired()` in this many milliseconds.
        case scheduleReconnect(delayMillis: Int)
        /// Write this frame and flush at once (the hello, a `statsRequest`).
        case writeAndFlush(Frame)
        /// Write this request frame; the next flush sends it.
        case write(Frame)
        /// On the next turn of the loop: call `flushTimerFired()`, flush the ids it gives and
        /// report the bytes the flush put on the socket with `flushed(_:measuredBytes:)`.
        case scheduleFlush
        /// Close the connection.
        case close
        /// Complete request `id` with this reply, after counting the answer in the metrics.
        case succeed(UInt64, UpstreamReply, answeredNanos: UInt64)
        /// Fail these requests (and cancel their deadline timers).
        case fail([UInt64], UpstreamFailure)
        /// Complete `statsRequest` `id` with these totals.
        case answerStats(UInt64, [LinkTotals])
        /// Fail these `statsRequest`s.
        case failStats([UInt64], UpstreamFailure)
        /// Complete every `waitUntilReady` future.
        case succeedReadyWaiters
        /// Log this message.
        case log(Logger.Level, String)
        /// The hello is done: the bytes counted so far are the handshake's; count a client handshake that succeeded.
        case handshakeSucceeded
        /// Count a client handshake that failed (the connection closed before its hello was done).
        case handshakeFailed
        /// Send a heartbeat: a `statsRequest` with this timeout; call `heartbeatAnswered()` when it is answered.
        case sendHeartbeat(timeoutMillis: Int64)
        /// Stop the heartbeat timer.
        case cancelHeartbeat
        /// Once the completions before it were delivered: call `transmitNextQueued()` and carry
        /// out what it gives until it gives nil. (A request sent from within a completion is
        /// written before the queue moves on, one queued request at a time.)
        case drainQueue
        /// Once the completions before it were delivered: call `releaseID(_:)` with this id. (A
        /// request sent from within a completion does not get the id of the request just answered.)
        case releaseID(UInt64)
    }

    /// What became of a submitted request.
    public enum Submission: Hashable, Sendable {
        /// Refused at once: the caller fails it with this.
        case refused(UpstreamFailure)
        /// Taken as request `id`: the caller keeps its promise under `id`, starts a timer that calls
        /// `deadlineFired(id)` at `due`, then carries out `actions` (the write, or nothing while it is queued).
        case accepted(id: UInt64, due: NIODeadline, actions: [Action])
    }

    /// What became of a `statsRequest`.
    public enum StatsSubmission: Hashable, Sendable {
        /// Refused at once: the caller fails it with this.
        case refused(UpstreamFailure)
        /// Sent as `id` on connection number `connection`: the caller keeps its promise under `id`,
        /// carries out `actions` and calls `statsTimedOut(_:connection:)` after its timeout.
        case accepted(id: UInt64, connection: UInt64, actions: [Action])
    }
}
