import BranchyWire
import NIOCore

/// The requests of one upstream connection, as a value: the ids handed out, the requests in
/// flight (the window), the queue behind the window, the `statsRequest`s awaiting an answer
/// and the requests written since the last flush.
///
/// Ids are shared by requests and `statsRequest`s and given back once answered, so that with a
/// small window they stay below 128 (one byte each as varints). An id whose request expired in
/// flight is never given back: its answer may still come. A new connection starts a new table
/// (ids from 1 again).
public struct UpstreamRequestTable: Sendable {
    /// A request written to the connection and not yet answered.
    public struct InFlight: Hashable, Sendable {
        /// When the request was written.
        public var sent: NIODeadline
        /// Size of its frame (header and payload).
        public var requestFrameBytes: Int
        /// Its share of the bytes its flush put on the socket, below TLS (0 until flushed).
        public var requestTLSBytes = 0
        /// The deadline it was given, for the failure that reports it.
        public var deadlineMillis: Int
    }

    /// A request waiting behind a full window; its deadline runs while it waits.
    public struct Queued: Hashable, Sendable {
        public var request: InferRequest
        /// When its deadline passes.
        public var due: NIODeadline
        /// The deadline it was given, for the failure that reports it.
        public var deadlineMillis: Int
    }

    /// The next id never handed out on this connection.
    private(set) var nextID: UInt64 = 1
    /// Ids answered on this connection, free to use again (the last freed is used first).
    private(set) var freeIDs: [UInt64] = []
    /// Requests written and not yet answered, by id.
    public var inFlight: [UInt64: InFlight] = [:]
    /// Requests waiting behind the window, by id.
    private(set) var waiting: [UInt64: Queued] = [:]
    /// Ids of `waiting` requests in arrival order (ids that expired while queued are skipped).
    private(set) var queue = CircularBuffer<UInt64>()
    /// Requests written since the last flush, in order.
    public var unflushed: [UInt64] = []
    /// `statsRequest`s sent and not yet answered: their ids, with the timeout each was given.
    public var statsWaiters: [UInt64: Int] = [:]

    /// An id for a new request or `statsRequest`: the last one freed, else a new one.
    public mutating func allocateID() -> UInt64 {
        if let free = freeIDs.popLast() { return free }
        defer { nextID += 1 }
        return nextID
    }

    /// Gives `id` back for reuse: its request was answered, or never sent.
    public mutating func release(_ id: UInt64) {
        freeIDs.append(id)
    }

    /// Puts request `id` in the queue behind the window. Once the queue holds more than
    /// `2 * maxQueued` ids, those that expired meanwhile are dropped from it.
    public mutating func enqueue(_ id: UInt64, _ queued: Queued, maxQueued: Int) {
        waiting[id] = queued
        queue.append(id)
        if queue.count > 2 * maxQueued {
            let waiting = self.waiting
            queue = CircularBuffer(queue.filter { waiting[$0] != nil })
        }
    }

    /// The oldest queued request still waiting, taken out of the queue.
    public mutating func dequeue() -> (id: UInt64, queued: Queued)? {
        while let id = queue.popFirst() {
            if let q = waiting.removeValue(forKey: id) { return (id, q) }  // else: expired while queued
        }
        return nil
    }

    /// Takes queued request `id` out of the queue, if it is still waiting.
    public mutating func removeQueued(_ id: UInt64) -> Queued? {
        waiting.removeValue(forKey: id)
    }

    /// Takes every request out, in flight and queued: their ids, those in flight first.
    /// Ids, `statsRequest`s and unflushed writes are left as they are.
    public mutating func removeAllRequests() -> [UInt64] {
        let ids = Array(inFlight.keys) + Array(waiting.keys)
        inFlight = [:]
        waiting = [:]
        queue.removeAll()
        return ids
    }
}
