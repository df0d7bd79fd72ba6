/// An Open Inference Protocol (v2) infer request, decoded and checked: its inputs as numbers,
/// the outputs asked for, and the request's parameters.
public struct InferenceRequest: Sendable {
    /// The client's request id, echoed in the response.
    public var id: String?
    /// The request's `parameters` object (members in document order); empty when absent.
    public var parameters: [(key: String, value: JSONValue)]
    /// The input tensors, in the request's order.
    public var inputs: [Input]
    /// The outputs asked for, in order; empty: every output, as JSON.
    public var outputs: [RequestedOutput]

    /// One input tensor.
    public struct Input: Sendable {
        public var name: String
        public var datatype: TensorDataType
        /// Its shape, every dimension at least 0.
        public var shape: [Int]
        /// Its elements in row-major order, converted to `Float` (bytes, integers and booleans as
        /// their values; FP16 and FP64 rounded to the nearest float).
        public var values: [Float]
        /// Whether the data came as binary tensor data (after the JSON), not as JSON numbers.
        public var binary: Bool
    }

    /// An output the client asked for, and whether it wants it as binary tensor data.
    public struct RequestedOutput: Sendable, Equatable {
        public var name: String
        public var binary: Bool
        public init(name: String, binary: Bool) { self.name = name; self.binary = binary }
    }

    /// Limits on one request.
    public struct Limits: Sendable {
        /// Most bytes of a request body, JSON and binary data together.
        public var maxBodyBytes: Int
        /// Most elements of one input tensor.
        public var maxElements: Int
        /// Most input tensors.
        public var maxInputs: Int
        /// Most dimensions of one input's shape.
        public var maxRank: Int
        /// Most bytes of a name or an id.
        public var maxNameBytes: Int

        public init(maxBodyBytes: Int = 16 << 20, maxElements: Int = 1 << 22, maxInputs: Int = 8, maxRank: Int = 8, maxNameBytes: Int = 256) {
            self.maxBodyBytes = maxBodyBytes; self.maxElements = maxElements; self.maxInputs = maxInputs
            self.maxRank = maxRank; self.maxNameBytes = maxNameBytes
        }
    }

    /// The parameter `key` of the request (nil when absent).
    public func parameter(_ key: String) -> JSONValue? { parameters.first { $0.key == key }?.value }
}
