/// The parsed and type-checked JSON header of a safetensors file.
struct SafeTensorsHeader {
    /// One tensor's description. Offsets are relative to the data section and not yet
    /// checked against it.
    struct Entry {
        var name: String
        var dtype: SafeTensors.DType
        var shape: [Int]
        var begin: Int
        var end: Int
        var elementCount: Int
        var byteCount: Int
    }

    /// Tensor entries in ascending name order.
    var entries: [Entry]
    var metadata: [String: String]

    /// Parses header bytes, checking UTF-8, JSON syntax and the type of every field.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
        let invalidUTF8 = transcode(bytes.makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true) { _ in }
        guard !invalidUTF8 else { throw SafeTensorsError.headerNotUTF8(file: file) }
        let json: StrictJSON
        do {
            json = try StrictJSON.parse(bytes)
        } catch {
            throw SafeTensorsError.headerNotJSON(file: file, reason: "\(error)")
        }
        guard case .object(let object) = json else { throw SafeTensorsError.headerNotObject(file: file) }

        var metadata: [String: String] = [:]
        if let raw = object["__metadata__"] {
            guard case .object(let dictionary) = raw else {
                throw SafeTensorsError.badMetadata(file: file, reason: "expected an object of strings, found \(raw.typeName)")
            }
            for (key, value) in dictionary {
                guard case .string(let string) = value else {
                    throw SafeTensorsError.badMetadata(file: file, reason: "value of '\(key)' is \(value.typeName), not string")
                }
                metadata[key] = string
            }
        }

        var entries: [Entry] = []
        for name in object.keys.sorted() where name != "__metadata__" {
            entries.append(try entry(name, object[name]!, file: file))
        }
        return SafeTensorsHeader(entries: entries, metadata: metadata)
    }

    private static func entry(_ name: String, _ raw: StrictJSON, file: String) throws -> Entry {
        guard case .object(let fields) = raw else {
            throw SafeTensorsError.entryNotObject(file: file, tensor: name)
        }
        func field(_ key: String) throws -> StrictJSON {
            guard let value = fields[key] else { throw SafeTensorsError.missingField(file: file, tensor: name, field: key) }
            return value
        }
        func integers(_ key: String, expected: String) throws -> [Int] {
            guard case .array(let array) = try field(key) else {
                throw SafeTensorsError.wrongType(file: file, tensor: name, field: key, expected: expected)
            }
            return try array.map {
                guard case .integer(let value) = $0 else {
                    throw SafeTensorsError.wrongType(file: file, tensor: name, field: key, expected: expected)
                }
                return value
            }
        }

        guard case .string(let dtypeName) = try field("dtype") else {
            throw SafeTensorsError.wrongType(file: file, tensor: name, field: "dtype", expected: "a string")
        }
        let shape = try integers("shape", expected: "an array of integers")
        let offsets = try integers("data_offsets", expected: "an array of two integers [begin, end]")
        guard offsets.count == 2 else {
            throw SafeTensorsError.wrongType(file: file, tensor: name, field: "data_offsets", expected: "an array of two integers [begin, end]")
        }
        guard let dtype = SafeTensors.DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unsupportedDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw SafeTensorsError.negativeDimension(file: file, tensor: name, shape: shape)
        }
        var elements = 1
        for dimension in shape {
            let product = elements.multipliedReportingOverflow(by: dimension)
            guard !product.overflow else { throw SafeTensorsError.shapeTooLarge(file: file, tensor: name, shape: shape) }
            elements = product.partialValue
        }
        guard elements <= SafeTensors.maxTensorElements else {
            throw SafeTensorsError.tensorTooLarge(file: file, tensor: name, shape: shape, limit: SafeTensors.maxTensorElements)
        }
        let bytes = elements.multipliedReportingOverflow(by: dtype.size)
        guard !bytes.overflow else { throw SafeTensorsError.shapeTooLarge(file: file, tensor: name, shape: shape) }
        return Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1],
                     elementCount: elements, byteCount: bytes.partialValue)
    }
}
