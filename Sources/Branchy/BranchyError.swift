/// Why an embedded device could not classify.
public struct BranchyError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The input does not fit the model (shape, size or pixels that cannot be prepared).
        case badInput
        /// More samples are waiting than the device takes at once (`maxQueued`); try again later.
        case queueFull
        /// No exit could answer: upstream failed and the topology's policy fails, or the deadline passed.
        case unanswered
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
}
