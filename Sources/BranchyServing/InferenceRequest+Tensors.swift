extension InferenceRequest.Input {
    /// An input given as fields rather than JSON (the gRPC form of the protocol), with every check
    /// the JSON path makes: the name's length, a known numeric datatype, the shape within the
    /// limits (413 past them), and exactly the shape's number of elements, each finite and, for
    /// integer types, in range.
    ///
    /// `raw`: the elements as little-endian bytes, row-major (`raw_input_contents`); else `typed`:
    /// the elements as numbers (`contents`), booleans as 0 and 1. `at` names the input in errors.
    public static func make(name: String, datatype typeName: String, shape dims: [Int64], raw: UnsafeRawBufferPointer?, typed: [Double],
                            at: String, limits: InferenceRequest.Limits) throws(ServingError) -> InferenceRequest.Input {
        guard name.utf8.count <= limits.maxNameBytes else { throw .badRequest("\(at).name is longer than \(limits.maxNameBytes) bytes") }
        guard let datatype = TensorDataType(rawValue: typeName) else {
            throw .badRequest("\(at).datatype '\(typeName)' is not one of \(TensorDataType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard datatype != .bytes else { throw .badRequest("\(at): BYTES tensors are not taken; send numbers (FP32, UINT8, …)") }
        guard dims.count <= limits.maxRank else { throw .badRequest("\(at).shape has \(dims.count) dimensions, more than \(limits.maxRank)") }
        var count = 1
        for (d, v) in dims.enumerated() {
            guard v >= 0, v <= Int64(Int32.max) else { throw .badRequest("\(at).shape[\(d)] must be a whole number from 0 to \(Int32.max)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(v))
            guard !overflow, product <= limits.maxElements else { throw .tooLarge("\(at).shape \(dims) has more than \(limits.maxElements) elements") }
            count = product
        }
        let shape = dims.map { Int($0) }
        let values: [Float]
        if let raw {
            let width = datatype.byteSize!
            guard raw.count == count * width else {
                throw .badRequest("\(at) has \(raw.count) bytes of raw data, but \(count) \(datatype.rawValue) elements take \(count * width)")
            }
            var reader = BinaryReader(bytes: raw)
            values = reader.read(count, datatype)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw .badRequest("\(at): element \(bad) of the raw data is not a finite \(datatype.rawValue) value")
            }
            return InferenceRequest.Input(name: name, datatype: datatype, shape: shape, values: values, binary: true)
        }
        guard typed.count == count else { throw .badRequest("\(at) has \(typed.count) elements, but shape \(shape) needs \(count)") }
        var converted: [Float] = []
        converted.reserveCapacity(count)
        for (i, v) in typed.enumerated() {
            if datatype.isInteger || datatype == .bool {
                let range: ClosedRange<Double> = datatype == .bool ? 0.0...1.0 : datatype.integerRange
                guard v == v.rounded(), range.contains(v) else { throw .badRequest("\(at): element \(i), \(v), is not a \(datatype.rawValue) value") }
            }
            guard Float(v).isFinite else { throw .badRequest("\(at): element \(i), \(v), is out of range for \(datatype.rawValue)") }
            converted.append(Float(v))
        }
        return InferenceRequest.Input(name: name, datatype: datatype, shape: shape, values: converted, binary: false)
    }
}

extension InferenceRequest {
    /// A request made of checked parts (the gRPC form of the protocol).
    public static func assembled(id: String?, parameters: [(key: String, value: JSONValue)], inputs: [Input],
                                 outputs: [RequestedOutput]) -> InferenceRequest {
        InferenceRequest(id: id, parameters: parameters, inputs: inputs, outputs: outputs)
    }
}
