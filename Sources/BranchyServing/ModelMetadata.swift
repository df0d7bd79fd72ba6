/// What the front door says of the model it serves: the protocol's model metadata
/// (`GET /v2/models/{name}`) and Triton's model configuration (`…/config`, which perf_analyzer
/// reads before it sends anything).
public struct ModelMetadata: Sendable, Equatable {
    /// A tensor's name, element type and shape; -1 marks the batch dimension.
    public struct TensorInfo: Sendable, Equatable {
        public var name: String
        public var datatype: TensorDataType
        public var shape: [Int]
        public init(name: String, datatype: TensorDataType, shape: [Int]) { self.name = name; self.datatype = datatype; self.shape = shape }
    }

    public var name: String
    public var versions: [String]
    public var platform: String
    public var inputs: [TensorInfo]
    public var outputs: [TensorInfo]
    /// The most samples one request may carry (its first dimension), 0 for none.
    public var maxBatchSize: Int

    public init(name: String, versions: [String] = ["1"], platform: String = "branchy", inputs: [TensorInfo], outputs: [TensorInfo], maxBatchSize: Int) {
        self.name = name; self.versions = versions; self.platform = platform; self.inputs = inputs; self.outputs = outputs; self.maxBatchSize = maxBatchSize
    }

    /// The model metadata response: `name`, `versions`, `platform`, `inputs`, `outputs`.
    public var metadataJSON: [UInt8] {
        var w = JSONWriter()
        w.raw("{\"name\":"); w.string(name)
        w.raw(",\"versions\":["); for (i, v) in versions.enumerated() { if i > 0 { w.raw(",") }; w.string(v) }; w.raw("]")
        w.raw(",\"platform\":"); w.string(platform)
        for (key, list) in [("inputs", inputs), ("outputs", outputs)] {
            w.raw(","); w.string(key); w.raw(":[")
            for (i, t) in list.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"name\":"); w.string(t.name); w.raw(",\"datatype\":"); w.string(t.datatype.rawValue); w.raw(",\"shape\":[")
                for (k, d) in t.shape.enumerated() { if k > 0 { w.raw(",") }; w.number(d) }
                w.raw("]}")
            }
            w.raw("]")
        }
        w.raw("}")
        return w.bytes
    }

    /// Triton's model configuration: `max_batch_size`, and each tensor's `data_type` (`TYPE_FP32`
    /// …) and `dims` without the batch dimension when the model batches.
    public var configJSON: [UInt8] {
        var w = JSONWriter()
        w.raw("{\"name\":"); w.string(name)
        w.raw(",\"platform\":"); w.string(platform)
        w.raw(",\"max_batch_size\":"); w.number(maxBatchSize)
        for (key, list) in [("input", inputs), ("output", outputs)] {
            w.raw(","); w.string(key); w.raw(":[")
            for (i, t) in list.enumerated() {
                if i > 0 { w.raw(",") }
                let dims = maxBatchSize > 0 ? Array(t.shape.dropFirst()) : t.shape
                w.raw("{\"name\":"); w.string(t.name); w.raw(",\"data_type\":"); w.string("TYPE_" + t.datatype.tritonName); w.raw(",\"dims\":[")
                for (k, d) in dims.enumerated() { if k > 0 { w.raw(",") }; w.number(d) }
                w.raw("]}")
            }
            w.raw("]")
        }
        w.raw("}")
        return w.bytes
    }
}

extension TensorDataType {
    /// The name in Triton's model configuration after `TYPE_` (`FP32`, `INT64`, `STRING` for BYTES).
    public var tritonName: String { self == .bytes ? "STRING" : rawValue }
}
