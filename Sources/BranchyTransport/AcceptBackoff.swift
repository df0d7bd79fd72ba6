import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One accept-backoff policy shared by every listener of a process (the TLS port, the metrics
/// port, anything added later): when `accept` fails — typically EMFILE or ENFILE, the descriptor
/// table full — the listener pauses instead of spinning on a socket that stays readable, and
/// the episode is logged once, not once per failure.
///
/// An episode starts with the first failure after a quiet spell of ``quietPeriod`` and ends when
/// that long passes without one; the next episode's first line says how many failures the last
/// one had. While an episode is under way the node is not ready (``notReadyBecause``).
public final class AcceptBackoff: Sendable {
    /// How long without a failed accept ends an episode.
    public static let quietPeriod: TimeAmount = .seconds(5)
    /// Pause after a failure that freed descriptors (connections were shed), and after one that did not.
    public static let shortPause: TimeAmount = .milliseconds(5)
    public static let longPause: TimeAmount = .milliseconds(250)

    private struct Episode {
        var failures = 0
        var last: NIODeadline?
        var error = ""
        var listener = ""
        var previousFailures = 0
    }

    public let logger: Logger
    private let episode = NIOLockedValueBox(Episode())

    /// A policy that logs to `logger`.
    public init(logger: Logger) {
        self.logger = logger
    }

    /// Records a failed accept on `listener` and returns how long that listener pauses. For
    /// EMFILE and ENFILE, `shed` may close connections to free descriptors (it returns how many).
    public func failed(_ error: IOError, listener: String, shed: () -> Int = { 0 }) -> TimeAmount {
        let exhausted = error.errnoCode == EMFILE || error.errnoCode == ENFILE
        let freed = exhausted ? shed() : 0
        let pause = freed > 0 ? Self.shortPause : Self.longPause
        let now = NIODeadline.now()
        let first = episode.withLockedValue { e -> (Bool, Int) in
            let starts = e.last.map { now - $0 >= Self.quietPeriod } ?? true
            if starts {
                e.previousFailures = e.failures
                e.failures = 0
            }
            e.failures += 1
            e.last = now
            e.error = "\(error)"
            e.listener = listener
            return (starts, e.previousFailures)
        }
        if first.0 {
            let before = first.1 > 0 ? " (the previous episode had \(first.1) failed accepts)" : ""
            let shedding = exhausted ? ", shedding unauthenticated or idle connections where the listener has them" : ""
            logger.warning("accept on \(listener) failed: \(error); pausing accepts for \(pause.nanoseconds / 1_000_000) ms after each failure\(shedding); further failures of this episode are not logged\(before)")
        }
        return pause
    }

    /// Nil unless an accept failed within the last ``quietPeriod``; then what failed.
    public var notReadyBecause: String? {
        let now = NIODeadline.now()
        return episode.withLockedValue { e in
            guard let last = e.last, now - last < Self.quietPeriod else { return nil }
            return "cannot accept connections on \(e.listener): \(e.error) (\(e.failures) failed accepts)"
        }
    }

    /// A handler for a listener's server channel that applies this policy.
    public func handler(listener: String, shed: @escaping @Sendable () -> Int = { 0 }) -> AcceptPauseHandler {
        AcceptPauseHandler { error in self.failed(error, listener: listener, shed: shed) }
    }
}

/// Pauses a listener after a failed accept: turns its `autoRead` off, which takes the listening
/// socket out of the event loop's poll set, and back on after the pause. (Merely holding back
/// `read()`, as NIO's `AcceptBackoffHandler` does, leaves the socket in the poll set: with the
/// descriptor table full it stays readable, and the loop wakes and fails `accept` again and again.)
public final class AcceptPauseHandler: ChannelInboundHandler {
    public typealias InboundIn = any Channel
    public typealias InboundOut = any Channel

    private let pauseAfter: (IOError) -> TimeAmount
    private var resume: Scheduled<Void>?

    public init(pauseAfter: @escaping (IOError) -> TimeAmount) {
        self.pauseAfter = pauseAfter
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let io = error as? IOError else {
            context.fireErrorCaught(error)
            return
        }
        let pause = pauseAfter(io)
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            resume = nil
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}
