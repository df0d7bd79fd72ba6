/// A node could not start or serve: the description says what, where and why.
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
