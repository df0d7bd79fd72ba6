import Foundation

/// Decodes `Decodable` values from JSON text through ``StrictJSON``.
///
/// Every error is a `DecodingError` whose context carries the key path of the offending value
/// and whose description says what was expected there and what was found, e.g. `expected an
/// integer, got 28.5`. (Foundation's `JSONDecoder` reports a number that does not fit the
/// expected type, such as 28.5 for an `Int`, as a corrupt document with no key path.)
/// Syntax errors are `dataCorrupted` with an empty key path.
enum StrictJSONDecoder {
    /// Decodes a `T` from UTF-8 JSON text.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let value: StrictJSON = try data.withUnsafeBytes { bytes in
            let invalidUTF8 = transcode(bytes.makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true) { _ in }
            guard !invalidUTF8 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the text is not valid UTF-8"))
            }
            do {
                return try StrictJSON.parse(bytes)
            } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "\(error)", underlyingError: error))
            }
        }
        return try ValueDecoder(value: value, codingPath: []).decode(type)
    }
}

/// A key of a key path: an array index or a made-up name.
private struct PathKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init(intValue: Int) { stringValue = "Index \(intValue)"; self.intValue = intValue }
}

/// A decoder for one value of the tree.
private struct ValueDecoder: Decoder {
    let value: StrictJSON
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func mismatch<T>(_ type: T.Type, _ expected: String) -> DecodingError {
        DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(expected), got \(value.shown)"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: StrictJSON].self, "an object") }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw mismatch([StrictJSON].self, "an array") }
        return UnkeyedContainer(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValueContainer(decoder: self) }

    /// Decodes the value as a `T`: scalars directly, anything else through `T.init(from:)`.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is Bool.Type:
            guard case .bool(let b) = value else { throw mismatch(type, "a boolean") }
            return b as! T
        case is String.Type:
            guard case .string(let s) = value else { throw mismatch(type, "a string") }
            return s as! T
        case is Double.Type:
            return try floatingPoint(Double.self) as! T
        case is Float.Type:
            return try floatingPoint(Float.self) as! T
        case let integer as any FixedWidthInteger.Type:
            return try self.integer(integer) as! T
        default:
            return try T(from: self)
        }
    }

    private func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let expected = I.self == Int.self ? "an integer" : "an integer that fits \(I.self)"
        guard case .integer(let v) = value, let exact = I(exactly: v) else { throw mismatch(type, expected) }
        return exact
    }

    private func floatingPoint<F: BinaryFloatingPoint & LosslessStringConvertible>(_ type: F.Type) throws -> F {
        let result: F?
        switch value {
        case .integer(let v): result = F(v)
        case .number(_, let text): result = F(text)
        default: result = nil
        }
        guard let result else { throw mismatch(type, "a number") }
        guard result.isFinite else { throw mismatch(type, "a number that fits \(F.self)") }
        return result
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: StrictJSON]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func child(_ key: any CodingKey) throws -> ValueDecoder {
        guard let value = members[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing key '\(key.stringValue)'"))
        }
        return ValueDecoder(value: value, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).value == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }

    func superDecoder() throws -> any Decoder { try child(PathKey(stringValue: "super")) }

    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [StrictJSON]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(elements: [StrictJSON], codingPath: [any CodingKey]) {
        self.elements = elements; self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private mutating func next() throws -> ValueDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [PathKey(intValue: currentIndex)],
                                                              debugDescription: "expected another element, the array has \(elements.count)"))
        }
        defer { currentIndex += 1 }
        return ValueDecoder(value: elements[currentIndex], codingPath: codingPath + [PathKey(intValue: currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, elements[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decode(type) }
}
