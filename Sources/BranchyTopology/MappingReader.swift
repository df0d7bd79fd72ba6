import Foundation
import Yams

/// Reads typed values out of one YAML mapping, rejecting unknown keys and wrong
/// types with errors that carry the key path and line.
struct MappingReader {
    let context: ErrorContext
    /// Key path of the mapping itself (`""` for the document root, `nodes[1]`, `nodes[1].tls`).
    let path: String
    let line: Int?
    private let values: [String: Node]

    /// Checks that `node` is a mapping whose keys are all strings from `allowed`.
    init(_ node: Node, path: String, allowed: [String], context: ErrorContext) throws {
        self.context = context
        self.path = path
        self.line = node.mark?.line
        guard case let .mapping(mapping) = node else {
            throw context.error(path, "expected a mapping with keys \(allowed.joined(separator: ", ")), got \(Self.describe(node))",
                                line: node.mark?.line)
        }
        var values: [String: Node] = [:]
        for (key, value) in mapping {
            guard case let .scalar(scalar) = key else {
                throw context.error(path, "keys must be plain names, got \(Self.describe(key))", line: key.mark?.line)
            }
            let name = scalar.string
            guard allowed.contains(name) else {
                var reason = "unknown key '\(name)'"
                if let guess = Self.closest(to: name, in: allowed) { reason += "; did you mean '\(guess)'?" }
                reason += " (allowed: \(allowed.joined(separator: ", ")))"
                throw context.error(Self.join(path, name), reason, line: key.mark?.line)
            }
            values[name] = value
        }
        self.values = values
    }

    func keyPath(_ key: String) -> String { Self.join(path, key) }

    /// The value under `key`, or nil when the key is absent or its value is null.
    func value(_ key: String) -> Node? {
        guard let node = values[key], !Self.isNull(node) else { return nil }
        return node
    }

    /// The line of the value under `key`, falling back to the mapping's line.
    func line(of key: String) -> Int? { values[key]?.mark?.line ?? line }

    func missing(_ key: String) -> TopologyError {
        context.error(keyPath(key), "missing required key '\(key)'", line: line)
    }

    /// A non-empty string scalar, or nil when absent.
    func string(_ key: String) throws -> String? {
        guard let node = value(key) else { return nil }
        return try Self.string(node, keyPath: keyPath(key), context: context)
    }

    /// A decimal integer, or nil when absent.
    func int(_ key: String) throws -> Int? {
        guard let node = value(key) else { return nil }
        guard case let .scalar(scalar) = node,
              let number = Int(scalar.string.replacingOccurrences(of: "_", with: "")) else {
            throw context.error(keyPath(key), "expected an integer, got \(Self.describe(node))", line: node.mark?.line)
        }
        return number
    }

    /// The elements of a list, or nil when absent.
    func list(_ key: String) throws -> [Node]? {
        guard let node = value(key) else { return nil }
        guard case let .sequence(sequence) = node else {
            throw context.error(keyPath(key), "expected a list such as [a, b], got \(Self.describe(node))",
                                line: node.mark?.line)
        }
        return Array(sequence)
    }

    // MARK: - Helpers shared with the document reader

    static func string(_ node: Node, keyPath: String, context: ErrorContext) throws -> String {
        guard case let .scalar(scalar) = node, !isNull(node) else {
            throw context.error(keyPath, "expected a string, got \(describe(node))", line: node.mark?.line)
        }
        let text = scalar.string.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { throw context.error(keyPath, "must not be empty", line: node.mark?.line) }
        return text
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    static func isNull(_ node: Node) -> Bool {
        guard case let .scalar(scalar) = node else { return false }
        return NSNull.construct(from: scalar) != nil
    }

    /// A short description of a YAML value for error messages.
    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            return isNull(node) ? "nothing (null)" : "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The allowed key closest to a misspelt one, if it is close enough to be a typo.
    static func closest(to key: String, in candidates: [String]) -> String? {
        let lowered = key.lowercased()
        let scored = candidates.map { ($0, editDistance(lowered, $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(3, key.count / 3)) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
