/// Why a model cannot be exported to ONNX: the stage, where in it (the layer's key path in
/// `model.json`, such as `trunk[3].layers[1]`), the layer's `op`, and the reason.
public struct ExportError: Error, CustomStringConvertible, Equatable {
    /// The stage's name.
    public var stage: String
    /// The layer's key path within the stage: `trunk[i]` or `exit.layers[i]`, then
    /// `.layers[j]`, `.shortcut[j]` or `.branches[b][j]` inside blocks.
    public var location: String
    /// The layer's `op`.
    public var op: String
    public var reason: String

    public init(stage: String, location: String, op: String, reason: String) {
        self.stage = stage; self.location = location; self.op = op; self.reason = reason
    }

    public var description: String {
        "stage '\(stage)', layer \(location) (op '\(op)'): \(reason)"
    }
}

/// An exported file that could not be written: the file, and why (the system's reason).
public struct ExportFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var reason: String

    public init(file: String, reason: String) { self.file = file; self.reason = reason }

    public var description: String { "cannot write \(file): \(reason)" }
}
