extension InferenceRequest {
    /// Decodes a request body. `jsonLength` is the `Inference-Header-Content-Length` header's
    /// value when the client sent binary tensor data after the JSON (Triton's binary data
    /// extension), nil when the whole body is JSON. Every refusal is a ``ServingError`` naming
    /// the field: 400 for a malformed request, 413 for one beyond `limits`.
    public static func decode(_ body: UnsafeRawBufferPointer, jsonLength: Int?, limits: Limits = Limits()) throws(ServingError) -> InferenceRequest {
        guard body.count <= limits.maxBodyBytes else {
            throw .tooLarge("the request body is \(body.count) bytes, more than the limit of \(limits.maxBodyBytes)")
        }
        let headerLength = jsonLength ?? body.count
        guard headerLength > 0, headerLength <= body.count else {
            throw .badRequest(jsonLength == nil ? "the request body is empty"
                : "Inference-Header-Content-Length is \(headerLength), but the body has \(body.count) bytes")
        }
        let json: JSONValue
        do {
            json = try JSONReader.parse(UnsafeRawBufferPointer(rebasing: body[0..<headerLength]),
                                        limits: JSONReader.Limits(maxDepth: limits.maxRank + 4, maxValues: limits.maxElements + 1024,
                                                                  maxStringBytes: limits.maxNameBytes * 16))
        } catch {
            throw .badRequest("the request is not valid JSON: \(error)")
        }
        guard case .object = json else { throw .badRequest("the request must be a JSON object, got \(json.typeName)") }
        var request = InferenceRequest(id: nil, parameters: [], inputs: [], outputs: [])
        if let id = json["id"] {
            guard case .string(let s) = id else { throw .badRequest("'id' must be a string, got \(id.typeName)") }
            guard s.utf8.count <= limits.maxNameBytes else { throw .badRequest("'id' is longer than \(limits.maxNameBytes) bytes") }
            request.id = s
        }
        if let p = json["parameters"] {
            guard case .object(let members) = p else { throw .badRequest("'parameters' must be an object, got \(p.typeName)") }
            request.parameters = members
        }
        guard let inputs = json["inputs"] else { throw .badRequest("'inputs' is missing") }
        guard case .array(let list) = inputs, !list.isEmpty else { throw .badRequest("'inputs' must be a non-empty array") }
        guard list.count <= limits.maxInputs else { throw .tooLarge("\(list.count) inputs, more than the limit of \(limits.maxInputs)") }
        var binary = BinaryReader(bytes: UnsafeRawBufferPointer(rebasing: body[headerLength...]))
        for (i, item) in list.enumerated() {
            request.inputs.append(try input(item, index: i, binary: &binary, limits: limits))
        }
        guard binary.remaining == 0 else {
            throw .badRequest("\(binary.bytes.count) bytes of binary tensor data follow the JSON, but the inputs' binary_data_size take \(binary.offset)")
        }
        if let outputs = json["outputs"] {
            guard case .array(let list) = outputs else { throw .badRequest("'outputs' must be an array, got \(outputs.typeName)") }
            guard list.count <= limits.maxInputs else { throw .tooLarge("\(list.count) outputs asked for, more than \(limits.maxInputs)") }
            for (i, item) in list.enumerated() {
                guard case .object = item else { throw .badRequest("outputs[\(i)] must be an object") }
                guard case .string(let name)? = item["name"] else { throw .badRequest("outputs[\(i)].name must be a string") }
                var wantsBinary = false
                if let p = item["parameters"] {
                    guard case .object = p else { throw .badRequest("outputs[\(i)].parameters must be an object") }
                    if let b = p["binary_data"] {
                        guard case .bool(let v) = b else { throw .badRequest("outputs[\(i)].parameters.binary_data must be a boolean") }
                        wantsBinary = v
                    }
                }
                request.outputs.append(RequestedOutput(name: name, binary: wantsBinary))
            }
        }
        return request
    }

    private static func input(_ item: JSONValue, index i: Int, binary: inout BinaryReader, limits: Limits) throws(ServingError) -> Input {
        let at = "inputs[\(i)]"
        guard case .object = item else { throw .badRequest("\(at) must be an object, got \(item.typeName)") }
        guard case .string(let name)? = item["name"] else { throw .badRequest("\(at).name must be a string") }
        guard name.utf8.count <= limits.maxNameBytes else { throw .badRequest("\(at).name is longer than \(limits.maxNameBytes) bytes") }
        guard case .string(let typeName)? = item["datatype"] else { throw .badRequest("\(at).datatype must be a string") }
        guard let datatype = TensorDataType(rawValue: typeName) else {
            throw .badRequest("\(at).datatype '\(typeName)' is not one of \(TensorDataType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard datatype != .bytes else { throw .badRequest("\(at): BYTES tensors are not taken; send numbers (FP32, UINT8, …)") }
        guard case .array(let dims)? = item["shape"] else { throw .badRequest("\(at).shape must be an array of whole numbers") }
        guard dims.count <= limits.maxRank else { throw .badRequest("\(at).shape has \(dims.count) dimensions, more than \(limits.maxRank)") }
        var shape: [Int] = []
        var count = 1
        for (d, dim) in dims.enumerated() {
            guard case .number(let v) = dim, v >= 0, v == v.rounded(), v <= Double(Int32.max) else {
                throw .badRequest("\(at).shape[\(d)] must be a whole number from 0 to \(Int32.max)")
            }
            shape.append(Int(v))
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(v))
            guard !overflow, product <= limits.maxElements else {
                throw .tooLarge("\(at).shape \(dims.map { if case .number(let n) = $0 { return String(Int(n)) } else { return "?" } }) "
                    + "has more than \(limits.maxElements) elements")
            }
            count = product
        }
        var binarySize: Int? = nil
        if let p = item["parameters"] {
            guard case .object = p else { throw .badRequest("\(at).parameters must be an object") }
            if let b = p["binary_data_size"] {
                guard case .number(let v) = b, v >= 0, v == v.rounded(), v <= Double(Int.max / 2) else {
                    throw .badRequest("\(at).parameters.binary_data_size must be a whole number of bytes")
                }
                binarySize = Int(v)
            }
        }
        let width = datatype.byteSize!
        if let size = binarySize {
            guard item["data"] == nil else { throw .badRequest("\(at) has both 'data' and binary_data_size") }
            guard size == count * width else {
                throw .badRequest("\(at).parameters.binary_data_size is \(size) bytes, but \(count) \(datatype.rawValue) elements take \(count * width)")
            }
            guard size <= binary.remaining else {
                throw .badRequest("\(at).parameters.binary_data_size is \(size) bytes, but only \(binary.remaining) bytes of binary data are left")
            }
            let values = binary.read(count, datatype)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw .badRequest("\(at): element \(bad) of the binary data is not a finite \(datatype.rawValue) value")
            }
            return Input(name: name, datatype: datatype, shape: shape, values: values, binary: true)
        }
        guard let data = item["data"] else { throw .badRequest("\(at) has neither 'data' nor parameters.binary_data_size") }
        var values: [Float] = []
        values.reserveCapacity(count)
        try flatten(data, into: &values, datatype: datatype, limit: count, at: "\(at).data")
        guard values.count == count else {
            throw .badRequest("\(at).data has \(values.count) elements, but shape \(shape) needs \(count)")
        }
        return Input(name: name, datatype: datatype, shape: shape, values: values, binary: false)
    }

    /// The elements of `data` (a scalar or arrays nested to any depth), row-major.
    private static func flatten(_ data: JSONValue, into values: inout [Float], datatype: TensorDataType, limit: Int, at: String) throws(ServingError) {
        switch data {
        case .array(let items):
            for item in items { try flatten(item, into: &values, datatype: datatype, limit: limit, at: at) }
        case .number(let v):
            guard datatype != .bool else { throw .badRequest("\(at): BOOL elements must be true or false, got \(v)") }
            if datatype.isInteger {
                guard v == v.rounded(), datatype.integerRange.contains(v) else {
                    throw .badRequest("\(at): \(v) is not a \(datatype.rawValue) value")
                }
            }
            guard values.count < limit else { throw .badRequest("\(at) has more elements than its shape") }
            guard Float(v).isFinite else { throw .badRequest("\(at): \(v) is out of range for \(datatype.rawValue)") }
            values.append(Float(v))
        case .bool(let b):
            guard datatype == .bool else { throw .badRequest("\(at): a boolean in \(datatype.rawValue) data") }
            guard values.count < limit else { throw .badRequest("\(at) has more elements than its shape") }
            values.append(b ? 1 : 0)
        default:
            throw .badRequest("\(at): \(data.typeName) where \(datatype.rawValue) elements are expected")
        }
    }
}

/// Reads binary tensor data (little-endian, row-major, no padding) one input after another.
struct BinaryReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var remaining: Int { bytes.count - offset }

    /// `count` elements of `type` as floats; the caller checked that they are there.
    mutating func read(_ count: Int, _ type: TensorDataType) -> [Float] {
        let base = bytes.baseAddress.map { $0 + offset }
        let width = type.byteSize!
        defer { offset += count * width }
        guard let base, count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count {
                let p = base + i * width
                switch type {
                case .bool, .uint8: out[i] = Float(p.load(as: UInt8.self))
                case .int8: out[i] = Float(p.load(as: Int8.self))
                case .uint16: out[i] = Float(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
                case .int16: out[i] = Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
                case .uint32: out[i] = Float(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
                case .int32: out[i] = Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
                case .uint64: out[i] = Float(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
                case .int64: out[i] = Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
                case .fp16: out[i] = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
                case .fp32: out[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
                case .fp64: out[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
                case .bytes: out[i] = 0
                }
            }
            initialized = count
        }
    }
}
