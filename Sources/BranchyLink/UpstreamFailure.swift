import BranchyWire

/// Why an upstream request got no result.
public enum UpstreamFailure: Error, CustomStringConvertible, Hashable, Sendable {
    /// Not connected, connection lost, or refused the handshake.
    case unavailable(String)
    /// No answer within the deadline.
    case deadline(Int)
    /// The upstream node answered with an error frame.
    case remote(ErrorFrame)
    /// Too many requests queued for the link.
    case overloaded(Int)
    /// The upstream node answered with a result this node cannot trust (an exit or class the model
    /// does not have); the connection is dropped.
    case invalidAnswer(String)

    public var description: String {
        switch self {
        case .unavailable(let why): return "upstream unavailable: \(why)"
        case .deadline(let ms): return "upstream deadline of \(ms) ms exceeded"
        case .remote(let e): return "upstream error: \(e)"
        case .overloaded(let n): return "upstream link overloaded (\(n) requests queued)"
        case .invalidAnswer(let why): return "upstream answer refused: \(why)"
        }
    }
}

/// An upstream answer and what it cost on this link.
public struct UpstreamReply: Hashable, Sendable {
    /// The answer, as upstream sent it.
    public var result: InferResult
    /// The bytes the request and its answer took on this link.
    public var cost: HopCost
}
