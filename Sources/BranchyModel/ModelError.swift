/// An error in a model directory: the description names the file, the place in it and the reason.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    /// Path of the offending file.
    public var file: String
    /// Where in the file: a key path such as `stages[1].trunk[0].out`, or a tensor name.
    public var location: String?
    /// What is wrong, and where useful what to do.
    public var reason: String

    public init(file: String, location: String? = nil, reason: String) {
        self.file = file; self.location = location; self.reason = reason
    }

    public var description: String {
        if let location { return "\(file): \(location): \(reason)" }
        return "\(file): \(reason)"
    }
}
