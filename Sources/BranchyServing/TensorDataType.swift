/// The tensor element types of the Open Inference Protocol (`datatype` in requests and responses).
public enum TensorDataType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case uint8 = "UINT8", uint16 = "UINT16", uint32 = "UINT32", uint64 = "UINT64"
    case int8 = "INT8", int16 = "INT16", int32 = "INT32", int64 = "INT64"
    case fp16 = "FP16", fp32 = "FP32", fp64 = "FP64"
    case bytes = "BYTES"

    /// Bytes per element in binary tensor data (nil for BYTES, whose elements carry their length).
    public var byteSize: Int? {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .uint16, .int16, .fp16: return 2
        case .uint32, .int32, .fp32: return 4
        case .uint64, .int64, .fp64: return 8
        case .bytes: return nil
        }
    }

    /// Whether elements are integers (JSON numbers without a fraction, in the type's range).
    public var isInteger: Bool {
        switch self {
        case .uint8, .uint16, .uint32, .uint64, .int8, .int16, .int32, .int64: return true
        default: return false
        }
    }

    /// The range of an integer type's values as doubles (every value exactly representable up to 2^53).
    var integerRange: ClosedRange<Double> {
        switch self {
        case .uint8: return 0...255
        case .uint16: return 0...65535
        case .uint32: return 0...4_294_967_295
        case .uint64: return 0...9_007_199_254_740_992
        case .int8: return -128...127
        case .int16: return -32768...32767
        case .int32: return -2_147_483_648...2_147_483_647
        case .int64: return -9_007_199_254_740_992...9_007_199_254_740_992
        default: return -Double.infinity...Double.infinity
        }
    }
}
