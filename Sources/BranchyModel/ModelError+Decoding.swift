extension ModelError {
    /// The error for a description file that decoding rejected: the key path of the offending
    /// value as the location (e.g. `stages[1].trunk[0].out`) and what was wrong there.
    init(file: String, decoding error: DecodingError) {
        switch error {
        case .keyNotFound(let key, let context):
            self.init(file: file, location: ModelError.render(context.codingPath + [key]), reason: "missing key '\(key.stringValue)'")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            self.init(file: file, location: ModelError.render(context.codingPath), reason: context.debugDescription)
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            self.init(file: file, reason: "not valid JSON: \(context.debugDescription)")
        case .dataCorrupted(let context):
            self.init(file: file, location: ModelError.render(context.codingPath), reason: context.debugDescription)
        @unknown default:
            self.init(file: file, reason: "\(error)")
        }
    }

    /// A key path as written in messages: `stages[1].trunk[0].out`; nil for the top level.
    private static func render(_ path: [any CodingKey]) -> String? {
        guard !path.isEmpty else { return nil }
        return path.reduce("") { text, key in
            if let i = key.intValue { return text + "[\(i)]" }
            return text.isEmpty ? key.stringValue : text + "." + key.stringValue
        }
    }
}
