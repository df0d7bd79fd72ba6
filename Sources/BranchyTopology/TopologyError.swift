import Foundation

/// A problem found while reading or validating a topology file.
///
/// Every error names the file, the key path of the offending value
/// (for example `nodes[2].upstream` or `nodes[1].tls.cert`) and a reason,
/// so that the description alone tells the reader what to fix:
///
///     topology/local.yaml: nodes[2].upstream: unknown node 'edge9' (line 14)
public struct TopologyError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The topology file, as the caller named it.
    public var filePath: String
    /// The key path of the offending value, such as `nodes[2].upstream`;
    /// empty when the problem concerns the file as a whole.
    public var keyPath: String
    /// What is wrong, in words.
    public var reason: String
    /// The 1-based line in the file, when known.
    public var line: Int?

    /// Creates an error for `keyPath` in the file at `filePath`.
    public init(filePath: String, keyPath: String, reason: String, line: Int? = nil) {
        self.filePath = filePath
        self.keyPath = keyPath
        self.reason = reason
        self.line = line
    }

    /// `file: keyPath: reason (line N)`; the key path and line are left out when unknown.
    public var description: String {
        var text = filePath + ": "
        if !keyPath.isEmpty { text += keyPath + ": " }
        text += reason
        if let line { text += " (line \(line))" }
        return text
    }
}

/// Builds `TopologyError`s for one file; kept by the reader and the validators.
struct ErrorContext: Sendable {
    /// The file path as shown in error descriptions.
    let filePath: String

    func error(_ keyPath: String, _ reason: String, line: Int? = nil) -> TopologyError {
        TopologyError(filePath: filePath, keyPath: keyPath, reason: reason, line: line)
    }
}
