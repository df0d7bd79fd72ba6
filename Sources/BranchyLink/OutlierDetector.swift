import NIOCore

/// Consecutive-failure ejection of upstream replicas, after Envoy's outlier detection: a replica
/// whose requests fail ``consecutiveFailures`` times in a row (missed deadlines, errors, impossible
/// answers) leaves the rotation for a backoff period, whatever its heartbeats say. The period is
/// ``baseEjection`` times the number of times the replica has been ejected, at most
/// ``maxEjection``; a success resets the replica's count of failures and, once it is back in
/// rotation, its count of ejections.
///
/// A value with no I/O: the pool feeds it outcomes and asks it who is out, so every rule is
/// tested without sockets.
public struct OutlierDetector: Sendable {
    /// Failures in a row that eject a replica.
    public var consecutiveFailures = 3
    /// Length of a first ejection.
    public var baseEjection: TimeAmount = .seconds(5)
    /// Longest ejection.
    public var maxEjection: TimeAmount = .seconds(60)

    public init() {}

    private struct Record {
        public var failures = 0
        public var ejections = 0
        public var ejectedUntil: NIODeadline?
    }
    private var records: [String: Record] = [:]

    /// An ejection the pool should report.
    public struct Ejection: Equatable, Sendable {
        public var replica: String
        public var failures: Int
        public var duration: TimeAmount
    }

    /// Whether `replica` is out of rotation at `now`.
    public func isEjected(_ replica: String, at now: NIODeadline) -> Bool {
        guard let until = records[replica]?.ejectedUntil else { return false }
        return now < until
    }

    /// A request to `replica` was answered.
    public mutating func succeeded(_ replica: String, at now: NIODeadline) {
        guard var r = records[replica] else { return }
        r.failures = 0
        if let until = r.ejectedUntil, now >= until {
            r.ejectedUntil = nil
            r.ejections = 0
        }
        records[replica] = r.ejectedUntil == nil && r.ejections == 0 ? nil : r
    }

    /// A request to `replica` failed; returns the ejection when this failure ejects it.
    public mutating func failed(_ replica: String, at now: NIODeadline) -> Ejection? {
        var r = records[replica] ?? Record()
        if let until = r.ejectedUntil, now < until {
            records[replica] = r  // already out: requests sent before the ejection are still failing
            return nil
        }
        r.failures += 1
        guard r.failures >= consecutiveFailures else {
            records[replica] = r
            return nil
        }
        r.ejections += 1
        let nanos = min(maxEjection.nanoseconds, baseEjection.nanoseconds * Int64(min(r.ejections, 1_000)))
        let duration = TimeAmount.nanoseconds(nanos)
        r.ejectedUntil = now + duration
        let failures = r.failures
        r.failures = 0
        records[replica] = r
        return Ejection(replica: replica, failures: failures, duration: duration)
    }

    /// Forgets `replica` (it left the set).
    public mutating func remove(_ replica: String) {
        records[replica] = nil
    }
}

extension UpstreamFailure {
    /// Whether this failure counts against the replica that produced it: everything but a full
    /// local queue (this node's own overload) and a replica that said it is shutting down.
    public var countsAgainstReplica: Bool {
        switch self {
        case .overloaded: return false
        case .remote(let e): return e.code != .shuttingDown
        case .unavailable, .deadline, .invalidAnswer: return true
        }
    }
}
