/// Why an ONNX file cannot be imported: the file, and where in it (a node with its op type and
/// the opset, a tensor, an attribute), with the reason.
public struct ImportError: Error, CustomStringConvertible, Equatable {
    /// The ONNX file.
    public var file: String
    /// Where in the file, e.g. `node '/layer1/Conv' (Conv, opset 17)` or `initializer 'fc.weight'`; empty for the whole file.
    public var location: String
    public var reason: String

    public init(file: String, location: String = "", reason: String) {
        self.file = file; self.location = location; self.reason = reason
    }

    public var description: String {
        location.isEmpty ? "\(file): \(reason)" : "\(file): \(location): \(reason)"
    }
}
