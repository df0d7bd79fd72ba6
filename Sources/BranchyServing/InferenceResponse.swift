/// An Open Inference Protocol (v2) infer response, ready to encode as the HTTP body: JSON, with
/// the outputs the client asked for as binary tensor data after it.
public struct InferenceResponse: Sendable {
    public var modelName: String
    public var modelVersion: String?
    /// The request's id, echoed.
    public var id: String?
    /// The response's `parameters` object, in order.
    public var parameters: [(key: String, value: JSONValue)]
    public var outputs: [Output]

    /// One output tensor.
    public struct Output: Sendable {
        public var name: String
        public var shape: [Int]
        public var values: Values
        /// Sent as binary tensor data (`binary_data_size` in its parameters) rather than JSON numbers.
        public var binary: Bool

        public init(name: String, shape: [Int], values: Values, binary: Bool = false) {
            self.name = name; self.shape = shape; self.values = values; self.binary = binary
        }
    }

    /// An output's elements, row-major.
    public enum Values: Sendable, Equatable {
        case int64([Int64])
        case fp32([Float])

        public var datatype: TensorDataType { switch self { case .int64: return .int64; case .fp32: return .fp32 } }
        var count: Int { switch self { case .int64(let v): return v.count; case .fp32(let v): return v.count } }
    }

    public init(modelName: String, modelVersion: String? = nil, id: String? = nil,
                parameters: [(key: String, value: JSONValue)] = [], outputs: [Output]) {
        self.modelName = modelName; self.modelVersion = modelVersion; self.id = id; self.parameters = parameters; self.outputs = outputs
    }

    /// The body, and the JSON part's length when binary tensor data follows it (the value of the
    /// `Inference-Header-Content-Length` header); nil when the body is all JSON.
    public func encoded() -> (body: [UInt8], jsonLength: Int?) {
        var w = JSONWriter(capacity: 256 + outputs.reduce(0) { $0 + ($1.binary ? 0 : 12 * $1.values.count) })
        w.raw("{\"model_name\":"); w.string(modelName)
        if let modelVersion { w.raw(",\"model_version\":"); w.string(modelVersion) }
        if let id { w.raw(",\"id\":"); w.string(id) }
        if !parameters.isEmpty { w.raw(",\"parameters\":"); w.value(.object(parameters)) }
        w.raw(",\"outputs\":[")
        for (i, o) in outputs.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":"); w.string(o.name)
            w.raw(",\"datatype\":"); w.string(o.values.datatype.rawValue)
            w.raw(",\"shape\":[")
            for (k, d) in o.shape.enumerated() { if k > 0 { w.raw(",") }; w.number(d) }
            w.raw("]")
            if o.binary {
                w.raw(",\"parameters\":{\"binary_data_size\":"); w.number(o.values.count * o.values.datatype.byteSize!); w.raw("}}")
                continue
            }
            w.raw(",\"data\":[")
            switch o.values {
            case .int64(let v): for (k, x) in v.enumerated() { if k > 0 { w.raw(",") }; w.number(Int(x)) }
            case .fp32(let v): for (k, x) in v.enumerated() { if k > 0 { w.raw(",") }; w.number(x) }
            }
            w.raw("]}")
        }
        w.raw("]}")
        guard outputs.contains(where: \.binary) else { return (w.bytes, nil) }
        var body = w.bytes
        let jsonLength = body.count
        for o in outputs where o.binary {
            switch o.values {
            case .int64(let v): for x in v { withUnsafeBytes(of: x.littleEndian) { body.append(contentsOf: $0) } }
            case .fp32(let v): for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            }
        }
        return (body, jsonLength)
    }
}

extension ServingError {
    /// The protocol's error body: `{"error": "<message>"}`.
    public var body: [UInt8] {
        var w = JSONWriter()
        w.raw("{\"error\":"); w.string(message); w.raw("}")
        return w.bytes
    }
}
