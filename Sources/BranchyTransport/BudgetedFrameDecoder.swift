import BranchyWire
import NIOCore

/// What one connection holds of the node's ``InputBudget``. Lives on the connection's event loop.
public final class InputReservation {
    public let budget: InputBudget
    /// The authenticated peer identity; nil before a successful hello.
    public var peer: String?
    /// Bytes reserved for the frame being received.
    private(set) var reserved = 0
    /// Counts frames completed, so a deadline set for one frame can tell whether it is still the same frame.
    public private(set) var generation = 0
    /// True from the first byte of a frame until the frame is complete.
    public private(set) var inProgress = false
    /// Called when a frame's first bytes arrive (nil: its size is not known yet) and again once its
    /// size is known and reserved: the connection sets the frame's completion deadline.
    public var onFrameProgress: ((Int?) -> Void)?

    public init(budget: InputBudget) {
        self.budget = budget
    }

    public func reserve(_ bytes: Int) throws {
        guard let peer else { return }
        try budget.reserve(bytes, peer: peer)
        reserved = bytes
        onFrameProgress?(bytes)
    }

    /// Bytes of a frame arrived and the frame is not complete yet.
    public func partial() {
        guard !inProgress else { return }
        inProgress = true
        onFrameProgress?(nil)
    }

    /// The frame in progress is complete.
    public func finished() {
        release()
        inProgress = false
        generation += 1
    }

    public func release() {
        guard reserved > 0, let peer else { return }
        budget.release(reserved, peer: peer)
        reserved = 0
    }
}

/// The server side's frame decoder: ``FrameDecoder``'s checks, plus
/// - before a successful hello, payloads of at most ``maxPayloadBeforeHello`` bytes;
/// - a frame that is not complete yet reserves its whole size in the node's input budget
///   first, and fails the connection when the budget is used up.
public struct BudgetedFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// Largest payload accepted before the peer's hello was accepted (a hello is under 300 bytes).
    public static let maxPayloadBeforeHello = 4_096

    public let reservation: InputReservation
    public let limits: WireLimits
    /// The plain decoder, which follows the connection's dialect.
    private var plain: FrameDecoder

    public init(reservation: InputReservation, limits: WireLimits = .default) {
        self.reservation = reservation
        self.limits = limits
        self.plain = FrameDecoder(limits: limits)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        let maxPayload = reservation.peer == nil ? min(Self.maxPayloadBeforeHello, limits.maxPayloadBytes) : limits.maxPayloadBytes
        guard let size = try plain.peekFrameSize(buffer, maxPayload: maxPayload) else {
            // Part of a header: the frame's deadline runs from its first byte.
            if buffer.readableBytes > 0 { reservation.partial() }
            return nil
        }
        if buffer.readableBytes < size {
            reservation.partial()
            if reservation.reserved == 0 {
                try reservation.reserve(size)
                // Room for exactly this frame, so the buffer does not grow by doubling.
                buffer.reserveCapacity(minimumWritableBytes: size - buffer.readableBytes)
            }
            return nil
        }
        reservation.finished()
        return try plain.decode(buffer: &buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        // What is left is an incomplete frame: report it as the plain decoder does.
        return try plain.decodeLast(buffer: &buffer, seenEOF: seenEOF)
    }
}
